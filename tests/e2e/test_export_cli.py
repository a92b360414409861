"""``memo-zoo export`` (issue 18, item 4): a memo_released checkpoint written back in the released layout.

The model is the golden tiny release (``tests.golden``) behind a recipe with ``model.network:
{preset: memo_released, weights: <tiny>}`` and a wav2vec2 audio encoder (a random backbone of the
release's blocks x channels) holding the release's projector; its checkpoint is that network with
one tensor changed, so the test sees that the checkpoint's weights are exported, not the
release's. Every size comes from the tiny release's ``config.json`` files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from memo_zoo.cli.app import main
from memo_zoo.model.released.folder import PARTS, read_part_config, read_part_state
from memo_zoo.model.released.networks import load_diffusion_net
from tests.e2e.cli_helpers import memo_zoo
from tests.unit.released.helpers import TINY, audio_options, diffusion_config, motion_options
from tests.unit.released.test_release_folder import tiny_wav2vec2_like_the_release

pytestmark = pytest.mark.usefixtures("one_thread")

CHANGED = "conv_in.bias"  # a diffusion_net tensor the checkpoint changes


def write_recipe(path: Path, weights: Path, wav2vec2: Path, preset: str = "memo_released") -> Path:
    part = read_part_config(TINY, "audio_proj")
    network = f"{{preset: memo_released, weights: '{weights}'}}" if preset == "memo_released" else "{preset: tiny}"
    temporal = "" if preset == "memo_released" else \
        "  temporal: {kind: linear_memory}\n  audio_fusion: {kind: multimodal_attention}\n"
    path.write_text(
        "name: export-tiny\nseed: 0\ntask: {kind: smoke}\nmodel:\n"
        f"  network: {network}\n{temporal}"
        f"  audio_encoder: {{kind: wav2vec2, weights: '{wav2vec2}', projector: '{weights}', "
        f"token_count: {part['context_tokens']}, token_dim: {part['output_dim']}, "
        f"window: {(part['seq_len'] - 1) // 2}, hidden: {part['intermediate_dim']}}}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory, registry):
    """(folder, recipe, checkpoint, the changed tensor's value)."""
    from memo_zoo.model.memo_net import build_network
    from memo_zoo.recipe.components import slot_factories
    from memo_zoo.recipe.loader import load_recipe

    folder = tmp_path_factory.mktemp("export_cli")
    wav2vec2 = tiny_wav2vec2_like_the_release(folder / "wav2vec2", read_part_config(TINY, "audio_proj"))
    recipe = write_recipe(folder / "recipe.yaml", TINY, wav2vec2)
    net = build_network(load_recipe(recipe, registry).recipe.model, slot_factories(registry))
    with torch.no_grad():
        net.diffusion_net.get_parameter(CHANGED).add_(0.25)
    checkpoint = net.save_pretrained(folder / "checkpoint")
    return folder, recipe, checkpoint, net.diffusion_net.get_parameter(CHANGED).detach().clone()


def test_export_writes_the_checkpoint_in_the_released_layout(setup, registry, monkeypatch, capsys):
    folder, recipe, checkpoint, changed = setup
    out = folder / "exported"
    code = main(["export", "--recipe", str(recipe), "--checkpoint", str(checkpoint), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "wrote the released layout" in printed.out
    written = [name for name, part in PARTS.items() if part.folder(out).is_dir()]
    assert written == ["reference_net", "diffusion_net", "image_proj", "audio_proj"]
    for part in written:
        assert read_part_config(out, part) == read_part_config(TINY, part), part
        ours, theirs = read_part_state(out, part), read_part_state(TINY, part)
        assert sorted(ours) == sorted(theirs), part
        for key, value in theirs.items():
            expected = changed if (part, key) == ("diffusion_net", CHANGED) else value
            assert torch.equal(ours[key], expected), f"{part}/{key}"
    # the exported folder loads strictly as a release
    from memo_zoo.recipe.components import component_factory

    config = diffusion_config()
    load_diffusion_net(out, component_factory(registry, "temporal", {"kind": "motion_module",
                                                                     **motion_options(config).model_dump()}),
                       component_factory(registry, "audio_fusion", {"kind": "joint_audio",
                                                                    **audio_options(config).model_dump()}))

    # bfloat16 on request, into the same (now non-empty) folder with --force
    code = main(["export", "--recipe", str(recipe), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--dtype", "bfloat16", "--force"])
    assert code == 0, capsys.readouterr().err
    assert read_part_state(out, "diffusion_net")[CHANGED].dtype == torch.bfloat16


def test_cli_refusals_exit_2_naming_the_problem(setup, tmp_path, registry):
    folder, recipe, checkpoint, _ = setup
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    result = memo_zoo("export", "--recipe", str(recipe), "--checkpoint", str(checkpoint), "--out", str(busy),
                      cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    assert "not empty" in result.stderr and "--force" in result.stderr
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]

    # a checkpoint of the zoo's own network: the released code cannot run it
    from memo_zoo.model.memo_net import build_network
    from memo_zoo.recipe.components import slot_factories
    from memo_zoo.recipe.loader import load_recipe

    zoo_recipe = write_recipe(tmp_path / "zoo.yaml", TINY, folder / "wav2vec2", preset="tiny")
    zoo_net = build_network(load_recipe(zoo_recipe, registry).recipe.model, slot_factories(registry))
    zoo_checkpoint = zoo_net.save_pretrained(tmp_path / "zoo_checkpoint")
    result = memo_zoo("export", "--recipe", str(zoo_recipe), "--checkpoint", str(zoo_checkpoint),
                      "--out", str(tmp_path / "out"), cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    assert "the released code only has the memo_released network" in result.stderr
    assert not (tmp_path / "out").exists()
    assert json.loads((zoo_checkpoint / "memo_net.json").read_text())["network"]["preset"] == "tiny"
