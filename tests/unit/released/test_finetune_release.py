"""``recipes/finetune_memo.yaml`` on the golden tiny release (issue 18, item 7): the release's
fine-tuning through the zoo's train task -- a few steps, then a resume; the loss is finite and only
the motion and audio modules change (``phases[].trainable: temporal_audio``).

The recipe is the shipped one; the test points it at the tiny release and tiny stand-ins (a random
4-level AutoencoderKL with the release's latent channels, a random wav2vec2 of the release
projector's blocks x channels, a conv image encoder of the image projector's width, a tiny
talking_world) and shrinks the run. Every size comes from the tiny release's ``config.json`` files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from safetensors.torch import load_file

from memo_zoo.model.released.folder import read_part_config, read_part_state
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.runner import run_recipe
from memo_zoo.train.checkpoint import list_checkpoints
from memo_zoo.train.step import RELEASED_SITE
from tests.unit.released.helpers import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "finetune_memo.yaml"
NET_PARTS = ("reference_net", "diffusion_net", "image_proj")


def tiny_vae(folder: Path) -> Path:
    """A random AutoencoderKL with as many halvings as the release's UNet levels and its latent channels."""
    from diffusers import AutoencoderKL

    diffusion = read_part_config(TINY, "diffusion_net")
    levels = len(diffusion["block_out_channels"])
    torch.manual_seed(0)
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                  up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=(8,) * levels,
                  layers_per_block=1, latent_channels=diffusion["in_channels"], norm_num_groups=8,
                  sample_size=64).save_pretrained(folder)
    return folder


def tiny_wav2vec2(folder: Path) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    part = read_part_config(TINY, "audio_proj")
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=part["channels"], num_hidden_layers=part["blocks"], num_attention_heads=2,
                            intermediate_size=24, conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=10)
    Wav2Vec2Model(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("finetune_release")
    return {"root": folder, "vae": tiny_vae(folder / "vae"), "wav2vec2": tiny_wav2vec2(folder / "wav2vec2")}


def overrides(stand_ins: dict[str, Path], out_dir: Path, steps: int) -> list[str]:
    audio = read_part_config(TINY, "audio_proj")
    image = read_part_config(TINY, "image_proj")
    root = stand_ins["root"]
    samples = {"size": 64, "fps": 25, "clip_frames": 4, "motion_frames": 2, "motion_padding": "reference",
               "audio_window": (audio["seq_len"] - 1) // 2, "label_set": "emotion2vec", "samples_per_clip": 2}
    return [
        f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
        f"task.out_dir={out_dir}", f"task.steps={steps}", "task.checkpoint_every=2", "task.log_every=1",
        "task.mixed_precision='no'", "task.robust_loss.threshold=null", f"task.samples={json.dumps(samples)}",
        f"model.network.weights={TINY}",
        f"model.audio_encoder.weights={stand_ins['wav2vec2']}", f"model.audio_encoder.projector={TINY}",
        f"model.audio_encoder.token_count={audio['context_tokens']}",
        f"model.audio_encoder.token_dim={audio['output_dim']}",
        f"model.audio_encoder.hidden={audio['intermediate_dim']}",
        f"model.audio_encoder.window={(audio['seq_len'] - 1) // 2}",
        f"model.image_encoder={{kind: conv, embed_dim: {image['clip_embeddings_dim']}, channels: [8]}}",
        f"model.vae={{kind: sd_vae, weights: '{stand_ins['vae']}', sample: true}}",
        f"data.dataset={{kind: talking_world, root: '{root / 'world'}', identities: 2, clips_per_identity: 2, "
        "seconds: [1.0, 2.0], long_clips: 0, size: 32, test_identities: 0, workers: 1}",
    ]


def network_tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model" / "memo_net.safetensors"))


def is_site(key: str) -> bool:
    """A key of a motion or audio module (``<part>.<...>.motion_modules.<j>.*``)."""
    parts = key.split(".")
    return any(RELEASED_SITE.search(".".join(parts[:i])) for i in range(2, len(parts)))


def test_recipe_trains_the_motion_and_audio_modules_only_and_resumes(stand_ins, registry, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(stand_ins["root"] / "cache"))
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "ft"
    first = run_recipe(load_recipe(RECIPE, registry, overrides(stand_ins, out_dir, steps=2)), registry)
    resumed = run_recipe(load_recipe(RECIPE, registry, [*overrides(stand_ins, out_dir, steps=4),
                                                        "task.resume=true"]), registry)
    assert [step for step, _ in list_checkpoints(out_dir)] == [2, 4]

    client = MlflowClient(first.tracking_uri)
    losses = {run: {m.step: m.value for m in client.get_metric_history(run, "loss")}
              for run in (first.run_id, resumed.run_id)}
    assert sorted(losses[first.run_id]) == [1, 2] and sorted(losses[resumed.run_id]) == [3, 4]
    assert all(math.isfinite(v) for run in losses.values() for v in run.values())
    assert client.get_run(resumed.run_id).data.tags["memo_zoo.train.resumed_from"].endswith("checkpoint-00000002")

    release = {f"{part}.{key}": value for part in NET_PARTS for key, value in read_part_state(TINY, part).items()}
    at_2, at_4 = (network_tensors(path) for _, path in list_checkpoints(out_dir))
    assert sorted(at_4) == sorted(release)
    for later, earlier in ((at_2, release), (at_4, at_2)):
        changed = {key for key in release if not torch.equal(later[key], earlier[key])}
        assert changed, "no parameter changed"
        assert all(is_site(key) for key in changed), sorted(k for k in changed if not is_site(k))[:5]
    # every motion and audio module moved (AdamW's first steps move every parameter with a gradient)
    sites = {key.split(".motion_modules.")[0] + ".motion_modules." + key.split(".motion_modules.")[1].split(".")[0]
             for key in release if ".motion_modules." in key}
    assert all(any(k.startswith(site + ".") and not torch.equal(at_4[k], release[k]) for k in release)
               for site in sites)
    # the released projector stayed the release's
    encoders = out_dir / "checkpoint-00000004" / "encoders.safetensors"
    if encoders.is_file():
        from memo_zoo_plugins.audio_encoder.released_projector import to_zoo_keys

        projector = to_zoo_keys(read_part_state(TINY, "audio_proj"))
        stored = load_file(str(encoders))
        for key, value in projector.items():
            name = f"audio_encoder.projector.{key}"
            if name in stored:
                assert torch.equal(stored[name], value), name

    # ... and `memo-zoo export` writes the fine-tuned checkpoint back in the released layout
    from memo_zoo.cli.app import main

    exported = tmp_path / "exported"
    code = main(["export", "--recipe", str(RECIPE), "--checkpoint", str(out_dir), "--out", str(exported),
                 *overrides(stand_ins, out_dir, steps=4)])
    assert code == 0
    for part in NET_PARTS:
        for key, value in read_part_state(exported, part).items():
            assert torch.equal(value, at_4[f"{part}.{key}"]), f"{part}/{key}"
    projector, released = read_part_state(exported, "audio_proj"), read_part_state(TINY, "audio_proj")
    assert sorted(projector) == sorted(released)
    assert all(torch.equal(projector[key], value) for key, value in released.items())


def test_temporal_audio_selects_the_site_modules_of_either_family(registry):
    """``temporal_audio`` = every temporal and audio module, nothing else: the zoo's blocks and the
    release's ``motion_modules`` / ``audio_modules`` (the names its finetune.py trains by)."""
    from types import SimpleNamespace

    from memo_zoo.model.memo_net import build_network
    from memo_zoo.recipe.components import slot_factories
    from memo_zoo.recipe.network import RELEASED, NetworkConfig
    from memo_zoo.train.step import TrainModules, apply_phase, site_modules
    from tests.unit.test_train_step import make_modules

    zoo = make_modules()
    apply_phase(zoo, "temporal_audio", list(zoo.parameters()))
    blocks = zoo.net.diffusion_net.blocks
    sites = {id(p) for block in blocks for module in (block.audio, block.temporal) for p in module.parameters()}
    assert {id(p) for p in zoo.parameters() if p.requires_grad} == sites

    model = SimpleNamespace(network=NetworkConfig(preset=RELEASED, weights=str(TINY)), temporal=None,
                            audio_fusion=None)
    net = build_network(model, slot_factories(registry))
    released = TrainModules(net, zoo.image_encoder, zoo.audio_encoder, 25.0, 1)
    apply_phase(released, "temporal_audio", list(released.parameters()))
    trained = {name for name, p in released.named_parameters() if p.requires_grad}
    assert trained == {name for name, _ in released.named_parameters()
                       if ".motion_modules." in name or ".audio_modules." in name}
    found = {id(module) for module in site_modules(net)}
    motion = {id(module) for module in net.diffusion_net.motion_modules}
    audio = found - motion
    assert motion <= found and audio
    assert all(".audio_modules." in name for name, module in net.diffusion_net.named_modules() if id(module) in audio)
