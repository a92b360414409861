"""``task: train`` end to end on a tiny talking_world: resume reproduces the loss curve exactly,
Ctrl-C leaves a valid checkpoint and a FAILED MLflow run, robust filtering is counted (spec L5).

The helpers here (registry, world, recipe) are shared with ``test_train_multiprocess``.
"""

from __future__ import annotations

import functools
import json
import textwrap
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from safetensors.torch import load_file

import memo_zoo.train.loop as train_loop
import memo_zoo.tasks.train as train_task
from memo_zoo.errors import MemoZooError
from memo_zoo.model.memo_net import MemoNet
from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.components import slot_factories
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.runner import run_recipe
from memo_zoo.train.checkpoint import list_checkpoints, read_state
from memo_zoo.train.config import TrainConfig
from memo_zoo.cli.launch import load_plugin
from memo_zoo.train.loop import Trainer


class _TrainTask:
    """Registers ``train`` in the task slot for tests run before the built-in entry point has it."""

    @hookimpl
    def task_components(self) -> list[ComponentSpec]:
        return [ComponentSpec("train", TrainConfig, train_task.build, "train the MEMO network")]


TRAIN_TASK_PLUGIN = _TrainTask()

# (slot, kind, plugin to register when the installed entry points lack the kind)
FALLBACKS = (
    ("task", "train", "tests.e2e.test_train_resume:TRAIN_TASK_PLUGIN"),
    ("audio_encoder", "log_mel", "memo_zoo_plugins.audio_encoder.plugin"),
    ("image_encoder", "conv", "memo_zoo_plugins.image_encoder.plugin"),
    ("dataset", "talking_world", "memo_zoo_plugins.datasets.talking_world.plugin"),
)


def missing_plugins() -> tuple[str, ...]:
    installed = load_registry(disabled=())
    return tuple(plugin for slot, kind, plugin in FALLBACKS if kind not in installed.kinds(slot))


def train_registry():
    """A fresh registry (not the CLI's cached one, which another test may have built with plugins disabled)."""
    return load_registry(disabled=(), extra_plugins=[(name, load_plugin(name)) for name in missing_plugins()])


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """A folder for a tiny talking_world (4 clips of 1-2 s at 32 px), its frame cache and an MLflow
    store, shared by the training tests of a session (generated / created on first use)."""
    return tmp_path_factory.mktemp("train_world")


def write_recipe(folder: Path, world: Path, steps: int, **task: object) -> Path:
    """A train recipe of a very small network on the tiny world (B=2, 4 target frames, 2-3 motion
    frames drawn per sample, 32 px -> 192 x 4 x 4 pixel-VAE latents)."""
    options = {"kind": "train", "steps": steps, "batch_size": 2, "log_every": 1, "checkpoint_every": 4,
               "keep_checkpoints": 5, "robust_loss": {"threshold": 5.0},
               # 4 clips x 2 samples per clip = 8 items: 4 batches per epoch on one process.
               "samples": {"size": 32, "clip_frames": 4, "motion_frames": [2, 3], "audio_window": 1,
                           "samples_per_clip": 2},
               **task}
    path = folder / "train.yaml"
    path.write_text(textwrap.dedent(f"""
        name: tiny-train
        seed: 3
        tracking: {{uri: "sqlite:///{world / 'mlflow.db'}"}}
        task: {json.dumps(options)}
        model:
          network: {{block_out_channels: [16, 32], attention_head_dim: 2, cross_attention_dim: 16,
                    latent_channels: 192, audio_tokens: 4, audio_dim: 8, image_tokens: 2, image_embed_dim: 8}}
          temporal: {{kind: linear_memory, heads: 2}}
          audio_fusion: {{kind: multimodal_attention, heads: 2}}
          audio_encoder: {{kind: log_mel, token_count: 4, token_dim: 8, hidden: 16, n_mels: 16, window: 1}}
          image_encoder: {{kind: conv, embed_dim: 8, channels: [8]}}
          vae: {{kind: pixel, patch_size: 8}}
        data:
          dataset: {{kind: talking_world, root: {world / "world"}, identities: 2, clips_per_identity: 2,
                    seconds: [1.0, 2.0], long_clips: 0, size: 32, test_identities: 0, workers: 1}}
    """))
    return path


def loss_curve(client: MlflowClient, run_id: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, "loss")}


@pytest.fixture(autouse=True)
def small_threads(monkeypatch, world):
    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(world / "cache"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _stop_after(step: int):
    def on_step(state) -> None:
        if state.step == step:
            raise KeyboardInterrupt

    return on_step


def test_an_interrupted_run_resumes_with_the_same_loss_curve(workdir, world, monkeypatch):
    """Spec issue 5: kill a run mid-way and resume; steps 4-6 equal those of an unbroken run."""
    registry = train_registry()
    # Stage 1, warm-up, joint (L2, L3): the resume at step 3 lands inside the warm-up.
    phases = [{"name": "stage1", "steps": 2, "trainable": "spatial"},
              {"name": "warmup", "steps": 2, "trainable": "new"}, {"name": "joint", "trainable": "all"}]
    recipe = write_recipe(workdir, world, steps=6, phases=phases)

    full = run_recipe(load_recipe(recipe, registry, ["task.out_dir=full"]), registry)
    client = MlflowClient(full.tracking_uri)
    uninterrupted = loss_curve(client, full.run_id)
    assert sorted(uninterrupted) == [1, 2, 3, 4, 5, 6]
    assert [m.value for m in sorted(client.get_metric_history(full.run_id, "phase"), key=lambda m: m.step)] == \
        [0, 0, 1, 1, 2, 2]
    assert [s for s, _ in list_checkpoints(workdir / "full")] == [4, 6]

    # "Kill" the run after step 3 (Ctrl-C): it saves step 3 and the MLflow run ends FAILED.
    # The train task imports the loop when it runs: patch the class where it is looked up.
    monkeypatch.setattr(train_loop, "Trainer", functools.partial(Trainer, on_step=_stop_after(3)))
    started: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_recipe(load_recipe(recipe, registry, ["task.out_dir=cut"]), registry, on_start=started.append)
    monkeypatch.setattr(train_loop, "Trainer", Trainer)
    cut = client.get_run(started[0])
    assert cut.info.status == "FAILED" and cut.data.tags["error"] == "KeyboardInterrupt"
    assert [s for s, _ in list_checkpoints(workdir / "cut")] == [3]
    checkpoint = workdir / "cut" / "checkpoint-00000003"
    state = read_state(checkpoint)
    assert (state.step, state.samples_seen, state.world_size) == (3, 6, 1)
    assert (state.epoch, state.batch_in_epoch) == (0, 3)  # 4 batches per epoch: steps 5-6 start epoch 1
    MemoNet.from_pretrained(checkpoint / "model", slot_factories(registry))  # a complete, loadable network
    assert not list((workdir / "cut").glob(".tmp-*"))
    interrupted = loss_curve(client, started[0])
    assert sorted(interrupted) == [1, 2, 3]

    resumed_outcome = run_recipe(load_recipe(recipe, registry, ["task.out_dir=cut", "task.resume=true"]), registry)
    resumed = loss_curve(client, resumed_outcome.run_id)
    assert sorted(resumed) == [4, 5, 6]
    for step in (1, 2, 3):
        assert interrupted[step] == pytest.approx(uninterrupted[step], abs=1e-6)
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(uninterrupted[step], abs=1e-6), step
    tags = client.get_run(resumed_outcome.run_id).data.tags
    assert tags["memo_zoo.train.resumed_from"].endswith("checkpoint-00000003")
    assert tags["memo_zoo.train.resumed_from_run"] == started[0]
    a = load_file(str(workdir / "full" / "checkpoint-00000006" / "model" / "memo_net.safetensors"))
    b = load_file(str(workdir / "cut" / "checkpoint-00000006" / "model" / "memo_net.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert load_file(str(workdir / "cut" / "checkpoint-00000006" / "encoders.safetensors"))  # trainable encoders

    with pytest.raises(MemoZooError, match="already holds checkpoints"):
        run_recipe(load_recipe(recipe, registry, ["task.out_dir=full"]), registry)
    with pytest.raises(MemoZooError, match="nothing to resume"):
        run_recipe(load_recipe(recipe, registry, ["task.out_dir=empty", "task.resume=true"]), registry)


def test_samples_above_the_loss_threshold_are_dropped_and_counted(workdir, world):
    registry = train_registry()
    recipe = write_recipe(workdir, world, steps=2, robust_loss={"threshold": 1e-6})
    outcome = run_recipe(load_recipe(recipe, registry), registry)
    metrics = MlflowClient(outcome.tracking_uri).get_run(outcome.run_id).data.metrics
    assert metrics["dropped_samples_total"] == 4 and metrics["dropped_samples"] == 2
    assert "loss_kept" not in metrics
    checkpoint = workdir / "checkpoints" / "tiny-train" / "checkpoint-00000002"
    assert read_state(checkpoint).dropped_total == 4
    # Every sample dropped: no optimizer update ever happened.
    assert torch.load(checkpoint / "optimizer.pt", weights_only=True)["state"] == {}


def test_trainings_share_the_clip_latents_on_disk_and_learn_the_same(workdir, world):
    """Issue 19 item 5: the first training encodes each clip once into the frame cache, the next
    (another stage or variant with the same frozen VAE) reads it; the loss curve is the same as
    with every frame encoded each step."""
    registry = train_registry()
    recipe = write_recipe(workdir, world, steps=3)
    for stale in (world / "cache").rglob("latents-*.npy"):  # written by earlier tests of the session
        stale.unlink()
    curves, metrics = {}, {}
    for name, options in (("first", []), ("second", []),
                          ("plain", ["task.latent_store=false", "task.latent_cache_mb=0"])):
        outcome = run_recipe(load_recipe(recipe, registry, [f"task.out_dir={name}", *options]), registry)
        client = MlflowClient(outcome.tracking_uri)
        curves[name] = loss_curve(client, outcome.run_id)
        metrics[name] = client.get_run(outcome.run_id).data.metrics
    stored = sorted((world / "cache").rglob("latents-*.npy"))
    assert len(stored) == metrics["first"]["latent_store_clips_encoded"] > 0
    assert metrics["second"]["latent_store_clips_encoded"] == 0 and metrics["second"]["latent_store_clips_read"] > 0
    assert "latent_store_clips_encoded" not in metrics["plain"]
    for step, loss in curves["plain"].items():
        assert curves["first"][step] == pytest.approx(loss, abs=1e-6)
        assert curves["second"][step] == pytest.approx(loss, abs=1e-6)


def test_a_mouth_region_measured_per_clip_trains_and_is_measured_once(workdir, world):
    """Issue 20 item 4: ``source: landmarks`` measures every training clip's mouth box (kept in the
    frame cache) before the first step; a clip where no face is found uses the recipe's box."""
    registry = train_registry()
    region = {"name": "mouth", "box": [0.28, 0.5, 0.72, 0.8], "weight": 4.0, "source": "landmarks", "sample_every": 4}
    recipe = write_recipe(workdir, world, steps=2, loss_regions=[region])
    outcome = run_recipe(load_recipe(recipe, registry, ["task.out_dir=measured"]), registry)
    metrics = MlflowClient(outcome.tracking_uri).get_run(outcome.run_id).data.metrics
    stored = sorted((world / "cache").rglob("region-*.json"))
    assert len(stored) == 4  # the world's 4 training clips, one box each
    boxes = [json.loads(path.read_text())["box"] for path in stored]
    assert metrics["loss_region_mouth_fallback_clips"] == sum(box is None for box in boxes)
    assert all(box is None or (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1) for box in boxes)
    mtimes = [path.stat().st_mtime_ns for path in stored]
    run_recipe(load_recipe(recipe, registry, ["task.out_dir=measured-again"]), registry)
    assert [path.stat().st_mtime_ns for path in stored] == mtimes  # read back, not measured again
