"""The data pipeline on Ray Data (issue 21): the same records and files as the local engine.

One private Ray cluster serves the module (started by the zoo's own ``ray_cluster``: 2 CPUs,
127.0.0.1 only, no dashboard), over a tiny talking_world (2 identities x 2 clips of 1-2 s at 32
px) cut by scene_split into pieces, thinned by a test stage (drops, a bad-media drop) and resized.
The test stages travel to the Ray workers by value (cloudpickle), as a user's own stage would.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import cloudpickle
import pytest

from memo_zoo.data.media import MediaError
from memo_zoo.data.pipeline import MANIFEST_FILE, REPORT_FILE, VIDEO_DIR, StageResult, run_pipeline
from memo_zoo.data.ray_cluster import LOOPBACK, ray_cluster
from memo_zoo.data.ray_pipeline import RayStage, run_pipeline_on_ray
from memo_zoo.errors import MemoZooError, RecipeError
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.tasks.configs import RayOptions
from memo_zoo.tasks.preprocess import ray_stages
from memo_zoo_plugins.datasets.talking_world.dataset import TalkingWorld, TalkingWorldConfig
from memo_zoo_plugins.preprocess import resize, scene_split
from memo_zoo_plugins.preprocess.configs import ResizeConfig, SceneSplitConfig

from .cli_helpers import memo_zoo

ray = pytest.importorskip("ray")

WORLD = dict(identities=2, clips_per_identity=2, seconds=(1.0, 2.0), long_clips=0, size=32, test_identities=1,
             workers=1, split="all")
SPLIT = SceneSplitConfig(max_seconds=0.8, min_seconds=0.3)
RESIZE = ResizeConfig(size=32, fps=12.5)
VICTIM = "tw_id001_c00#000"  # the piece whose first sight kills its Ray worker in the kill test


class Pick:
    """Drops every second scene piece (with a value), drops one piece as unreadable media, and, given
    a ``marker`` file that does not exist yet, SIGKILLs its own process on seeing ``VICTIM``."""

    name = "pick"

    def __init__(self, marker: Path | None = None):
        self.marker = marker

    def process(self, clip, out_dir):
        if self.marker is not None and clip.clip_id == VICTIM and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        if clip.clip_id.endswith("#001"):
            return StageResult.drop("second piece", 1.0)
        if clip.clip_id == "tw_id000_c01#002":
            raise MediaError(clip.video, "unreadable (test)")
        return StageResult.keep(clip, value=2.0)


class Renamed(Pick):
    name = "picky"


# The Ray workers cannot import this test module; its stages travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def ray_pipeline_stages(marker: Path | None = None, pick_actors: int | None = None) -> list[RayStage]:
    return [RayStage("scene_split", functools.partial(scene_split.build, SPLIT), SPLIT),
            RayStage("pick", functools.partial(Pick, marker), actors=pick_actors),
            RayStage("resize", functools.partial(resize.build, RESIZE), RESIZE, actors=1)]


@pytest.fixture(scope="module")
def cluster():
    auth_mode = os.environ.get("RAY_AUTH_MODE")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)  # a private cluster, whatever the environment says
        with ray_cluster(None, num_cpus=2) as connected:
            yield connected
    # Ray's start turns its token mode on in this process's environment; later tests start afresh.
    if auth_mode is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = auth_mode


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> TalkingWorld:
    dataset = TalkingWorld(TalkingWorldConfig(root=tmp_path_factory.mktemp("tw") / "world", **WORLD), progress=False)
    assert len(dataset.clips()) == 4
    return dataset


@pytest.fixture(scope="module")
def local(world, tmp_path_factory):
    """The local engine's run: what every Ray run is compared with."""
    out = tmp_path_factory.mktemp("local")
    return run_pipeline(world, [scene_split.build(SPLIT), Pick(), resize.build(RESIZE)], out, resume=False), out


def report_lines(out: Path) -> list[str]:
    return [line.replace(str(out), "<out>") for line in (out / REPORT_FILE).read_text().splitlines()]


def videos(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / VIDEO_DIR).iterdir())}


def assert_same_as_local(local, result, out: Path) -> None:
    expected, expected_out = local
    lines = report_lines(out)
    assert len(lines) == len(set(lines)), "a report line was written twice"
    assert set(lines) == set(report_lines(expected_out))
    keys = [(json.loads(line)["index"], json.loads(line)["clip"]) for line in lines]
    assert len(keys) == len(set(keys)), "one (stage, clip) pair has two lines"
    assert (out / MANIFEST_FILE).read_text() == (expected_out / MANIFEST_FILE).read_text()
    assert result.counts == expected.counts
    assert result.dropped == expected.dropped
    assert [c.clip_id for c in result.clips] == [c.clip_id for c in expected.clips]
    # x264 here is deterministic (checked: two local runs give equal bytes), so files compare byte for byte.
    assert videos(out) == videos(expected_out)


def test_the_cluster_the_zoo_starts_is_private(cluster):
    import psutil

    assert cluster.get_runtime_context().gcs_address.startswith(f"{LOOPBACK}:")
    assert cluster.cluster_resources()["CPU"] == 2
    assert not cluster._private.worker.global_worker.node.address_info.get("webui_url")  # no dashboard
    ours = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    listening = [c.laddr for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert listening, "the cluster's servers were not found"
    assert all(addr.ip in (LOOPBACK, f"::ffff:{LOOPBACK}") for addr in listening), listening


def test_ray_gives_the_local_engines_records_and_files_and_resumes(cluster, world, local, tmp_path):
    expected, _ = local
    assert expected.counts["pick"].dropped >= 3 and expected.counts["scene_split"].outputs > 4
    assert any(d.reason == "unreadable (test)" for d in expected.dropped)
    shown = []

    def bar(items, desc, total=None, unit="it"):
        shown.append((desc, total, unit))
        for item in items:
            shown.append(item)
            yield item

    result = run_pipeline_on_ray(world, ray_pipeline_stages(), tmp_path, resume=False, progress=bar)
    assert_same_as_local(local, result, tmp_path)
    assert result.processed == expected.processed
    assert shown[0] == ("preprocess", 4, "clip") and sorted(shown[1:]) == [0, 1, 2, 3]  # one tick per clip

    again = run_pipeline_on_ray(world, ray_pipeline_stages(), tmp_path)
    assert again.processed == 0
    assert_same_as_local(local, again, tmp_path)

    # The resume rule: a result whose output file is gone is computed again, and only that one.
    (tmp_path / VIDEO_DIR / sorted(videos(tmp_path))[0]).unlink()
    repaired = run_pipeline_on_ray(world, ray_pipeline_stages(), tmp_path)
    assert repaired.processed == 1
    assert set(report_lines(tmp_path)) == set(report_lines(local[1]))
    assert videos(tmp_path) == videos(local[1])


@pytest.mark.parametrize("pick_actors", [None, 1], ids=["task", "actor"])
def test_a_killed_worker_is_retried_and_nothing_is_lost_or_doubled(cluster, world, local, tmp_path, pick_actors):
    marker = tmp_path / "killed"
    out = tmp_path / "out"
    result = run_pipeline_on_ray(world, ray_pipeline_stages(marker, pick_actors), out, resume=False)
    assert marker.is_file() and int(marker.read_text()) != os.getpid(), "no worker was killed"
    assert_same_as_local(local, result, out)


def recipe_text(world: TalkingWorld, engine: str, ray_options: str = "") -> str:
    return textwrap.dedent(f"""
        name: pp_ray
        task: {{kind: preprocess, out_dir: out, engine: {engine}{ray_options}}}
        data:
          dataset: {{kind: talking_world, root: {world.config.root}, identities: 2, clips_per_identity: 2,
                     seconds: [1.0, 2.0], long_clips: 0, size: 32, test_identities: 1, workers: 1, split: all}}
          preprocess:
            - {{kind: scene_split, max_seconds: 0.8, min_seconds: 0.3}}
            - {{kind: resize, size: 32, fps: 12.5}}
    """)


def test_the_cli_runs_a_recipe_with_engine_ray_on_a_running_cluster(cluster, world, tmp_path):
    from mlflow import MlflowClient

    address = cluster.get_runtime_context().gcs_address
    (tmp_path / "pp.yaml").write_text(recipe_text(world, "ray", f", ray: {{address: '{address}', "
                                                                f"stages: {{resize: {{actors: 1}}}}}}"))
    uri = (tmp_path / "mlruns").as_uri()
    out = memo_zoo("run", "pp.yaml", cwd=tmp_path, timeout=150,
                   env={"MEMO_ZOO_TRACKING_URI": uri, "MLFLOW_ALLOW_FILE_STORE": "true", "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]

    expected_out = tmp_path / "local"
    expected = run_pipeline(world, [scene_split.build(SPLIT), resize.build(RESIZE)], expected_out)
    assert (tmp_path / "out" / MANIFEST_FILE).read_text() == (expected_out / MANIFEST_FILE).read_text()
    assert set(report_lines(tmp_path / "out")) == set(report_lines(expected_out))
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FINISHED" and run.data.params["task.engine"] == "ray"
    assert run.data.metrics["preprocess.clips_out"] == len(expected.clips)
    assert run.data.metrics["preprocess.resize.kept"] == expected.counts["resize"].kept


def test_bad_engine_options_are_recipe_errors(registry, world, tmp_path):
    recipe = tmp_path / "pp.yaml"
    recipe.write_text(recipe_text(world, "spark"))
    with pytest.raises(RecipeError, match=r"task.engine: Input should be 'local' or 'ray'"):
        load_recipe(recipe, registry)
    recipe.write_text(recipe_text(world, "local", ", ray: {num_cpus: 2}"))
    with pytest.raises(RecipeError, match="ray options apply to engine: ray only"):
        load_recipe(recipe, registry)
    recipe.write_text(recipe_text(world, "ray", ", ray: {stages: {resise: {num_gpus: 1}}}"))
    loaded = load_recipe(recipe, registry).recipe
    with pytest.raises(MemoZooError, match=r"task.ray.stages names resise, not a stage .*scene_split, resize"):
        ray_stages(SimpleNamespace(registry=registry), loaded.data.preprocess, loaded.task.ray)
    stages = ray_stages(SimpleNamespace(registry=registry), loaded.data.preprocess, RayOptions(
        stages={"resize": {"num_gpus": 0.5}}))
    assert [(s.name, s.num_gpus, s.as_actors) for s in stages] == [("scene_split", 0, False), ("resize", 0.5, True)]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def test_an_unreachable_cluster_fails_fast_naming_the_address_and_its_origin(cluster, world, tmp_path, monkeypatch):
    address = f"{LOOPBACK}:{closed_port()}"
    with pytest.raises(MemoZooError, match=rf"cannot reach the Ray cluster at {address} \(task.ray.address\)"):
        run_pipeline_on_ray(world, ray_pipeline_stages(), tmp_path, address=address, address_field="task.ray.address")
    monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(MemoZooError, match=rf"{address} \(the RAY_ADDRESS environment variable\)"):
        run_pipeline_on_ray(world, ray_pipeline_stages(), tmp_path)
    with pytest.raises(MemoZooError, match="num_cpus / num_gpus size a local cluster"):
        run_pipeline_on_ray(world, ray_pipeline_stages(), tmp_path, num_cpus=2)
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(MemoZooError, match="not host:port"):
        run_pipeline_on_ray(world, ray_pipeline_stages(), tmp_path, address="headnode")
    assert not (tmp_path / REPORT_FILE).exists()


def test_stage_errors_reach_the_driver_as_memo_zoo_errors(cluster, world, tmp_path):
    gpu = [RayStage("pick", Pick, num_gpus=1)]
    with pytest.raises(MemoZooError, match=r"stage 'pick' asks for 1 GPU\(s\) per worker .* cluster has 0"):
        run_pipeline_on_ray(world, gpu, tmp_path / "gpu", resume=False)
    with pytest.raises(MemoZooError, match="built as a stage named 'picky'"):
        run_pipeline_on_ray(world, [RayStage("pick", Renamed)], tmp_path / "renamed", resume=False)


def test_without_ray_memo_zoo_imports_and_engine_ray_says_how_to_install(world, tmp_path, monkeypatch):
    blocked = ("import sys; sys.modules['ray'] = None; import memo_zoo, memo_zoo.data.ray_pipeline, "
               "memo_zoo.tasks.preprocess, memo_zoo.tasks.configs")
    assert subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True).returncode == 0
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MemoZooError, match=r"pip install 'memo-zoo\[ray\]'"):
        run_pipeline_on_ray(world, ray_pipeline_stages(), tmp_path)
    assert list(tmp_path.iterdir()) == []
