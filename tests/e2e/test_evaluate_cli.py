"""``memo-zoo evaluate``: a folder of videos measured with a recipe's metrics, in one process and on
two Ray workers (a local cluster the command starts), with the same figures; and its refusals.

The "generated" videos are clips of a tiny talking_world (so the recipe's dataset supplies their
per-frame truth for the world metrics), the reference folder is the world's own clip folder; the
networks are tiny random-init ones saved in the real formats (a world measurer file, a TorchScript
Inception stand-in).
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from tests.e2e.cli_helpers import memo_zoo
from tests.plugins.test_metrics import FakeInception, script

TINY_WORLD = dict(identities=4, test_identities=2, clips_per_identity=2, seconds=[1.0, 1.5], long_clips=0, size=32,
                  workers=1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from memo_zoo_plugins.datasets.talking_world.api import WorldConfig
    from memo_zoo_plugins.datasets.talking_world.measure import training
    from memo_zoo_plugins.datasets.talking_world.measure.measurer import MeasurerShape, WorldMeasurer
    from memo_zoo_plugins.datasets.talking_world.measure.store import save_measurer
    from memo_zoo_plugins.datasets.talking_world.world import generate

    root = tmp_path_factory.mktemp("evaluate")
    world = WorldConfig(root=root / "world", **TINY_WORLD)
    generate(world, progress=False)
    clips = sorted((root / "world" / "data" / "video").glob("*.mp4"))
    generated = root / "generated"
    generated.mkdir()
    for clip in clips[:3]:
        shutil.copy(clip, generated / clip.name)
    torch.manual_seed(0)
    fields = training.MeasurerReport.model_fields
    report = training.MeasurerReport(**{name: "tiny" if name == "world" else 0 for name in fields})
    measurer = save_measurer(WorldMeasurer(MeasurerShape(size=16, width=4, embed_dim=8, identities=2)), report,
                             root / "measurer.safetensors")
    world_options = {"measurer": str(measurer), "device": "cpu"}
    recipe = {"name": "evaluate_cli", "seed": 0, "task": {"kind": "smoke"},
              "data": {"dataset": {"kind": "talking_world", "root": str(root / "world"), **TINY_WORLD}},
              "metrics": [{"kind": "background"},
                          {"kind": "fid", "weights": script(FakeInception(), root / "inception.pt"), "device": "cpu"},
                          {"kind": "world_lip_sync", **world_options, "max_lag": 2},
                          {"kind": "world_identity", **world_options},
                          {"kind": "world_expression", **world_options},
                          {"kind": "world_fd", **world_options}]}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return root, clips[0].parent


def test_evaluate_prints_the_summary_and_writes_the_same_figures_on_one_and_two_workers(setup):
    root, references = setup
    outputs = {}
    for workers in (1, 2):
        out = root / f"w{workers}.json"
        done = memo_zoo("evaluate", "recipe.yaml", "--videos", "generated", "--reference", str(references),
                        "--workers", str(workers), "--out", str(out), cwd=root, env={"MEMO_ZOO_PROGRESS": "0"},
                        timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "3 videos measured" in done.stderr
        outputs[workers] = (done.stdout, json.loads(out.read_text()))
    (table, one), (table2, two) = outputs[1], outputs[2]
    assert table == table2 and "lip_sync_r" in table and "world_fd" in table and "background_error" in table
    assert one["summary"] == two["summary"] and one["per_video"] == two["per_video"]
    assert list(one["per_video"]) == sorted(p.stem for p in (root / "generated").glob("*.mp4"))
    assert one["skipped"] == {} and two["workers"] == 2
    # the ground truth against itself: the same frames, a zero distance per video
    assert all(abs(row["world_fd"]) < 1e-6 for row in one["per_video"].values())


def test_evaluate_refuses_missing_references_and_an_empty_folder(setup):
    root, _ = setup
    (root / "empty_refs").mkdir(exist_ok=True)
    done = memo_zoo("evaluate", "recipe.yaml", "--videos", "generated", "--reference", "empty_refs", "--no-truth",
                    cwd=root)
    assert done.returncode == 2 and "has no video for 3 generated video(s)" in done.stderr
    (root / "nothing").mkdir(exist_ok=True)
    done = memo_zoo("evaluate", "recipe.yaml", "--videos", "nothing", cwd=root)
    assert done.returncode == 2 and "nothing: no .mp4 file" in done.stderr
    helped = memo_zoo("evaluate", "--help", cwd=root)
    assert helped.returncode == 0 and "example:" in helped.stdout
