"""The trained autoencoder (spec A1 for the CPU default): what it writes, that sd_vae loads it at unit
latent scale, that it learns, and when the train_vae task reuses, refuses or retrains a folder."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from memo_zoo.data.clip import ClipRecord
from memo_zoo.errors import MemoZooError
from memo_zoo.recipe.loader import validate_document
from memo_zoo_plugins.vae import training_task as task_module
from memo_zoo_plugins.vae.autoencoder_training import (RECORD_FILE, AutoencoderTrainingConfig, FrameSource,
                                                       read_record, split_sources, train_autoencoder,
                                                       training_options)
from memo_zoo_plugins.vae.sd_vae import SDVAE, SDVAEConfig
from memo_zoo_plugins.vae.training_task import TrainVAEConfig, TrainVAETask
from tests.data_fixtures import write_clip
from tests.fake_datasets import DatasetRegistry

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(block_out_channels=(8, 16), norm_num_groups=4, batch_size=4, eval_every=3, eval_frames=12)


def _sources(clips: int = 4, frames: int = 6, size: int = 16, seed: int = 0) -> list[FrameSource]:
    """Smooth random images (blobs on a gradient), one source per clip."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for c in range(clips):
        stack = []
        for _ in range(frames):
            cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.3)
            blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)[..., None]
            image = np.concatenate([yy[..., None], xx[..., None], np.full_like(yy, c / clips)[..., None]], -1)
            stack.append(np.where(blob, 1 - image, image))
        out.append(FrameSource(f"clip{c}", (np.stack(stack) * 255).astype(np.uint8)))
    return out


def test_split_holds_out_every_nth_clip_in_id_order():
    sources = [FrameSource(f"c{i}", np.zeros((1, 8, 8, 3), np.uint8)) for i in (3, 0, 5, 1, 4, 2)]
    train, held = split_sources(sources, 3)
    assert [s.clip_id for s in held] == ["c2", "c5"]
    assert [s.clip_id for s in train] == ["c0", "c1", "c3", "c4"]
    train, held = split_sources(sources[:2], 3)  # fewer clips than N: the last is still held out
    assert [s.clip_id for s in held] == ["c3"]
    assert split_sources(sources[:1], 3) == (sources[:1], [])


def test_writes_a_diffusers_folder_that_sd_vae_loads_at_unit_scale(tmp_path):
    config = AutoencoderTrainingConfig(steps=3, **TINY)
    report = train_autoencoder(_sources(), config, tmp_path / "vae", data={"dataset": "blobs"})
    folder = tmp_path / "vae"
    assert (folder / "config.json").is_file() and (folder / "diffusion_pytorch_model.safetensors").is_file()
    record = read_record(folder)
    assert record["training"] == training_options(config) and record["size"] == 16
    # An option added later stays out of the record while at its default (earlier folders still match).
    assert record["training"] == {k: v for k, v in config.model_dump(mode="json").items() if k != "colour_augment"}
    assert record["data"] == {"dataset": "blobs"} and record["report"]["steps"] == 3
    assert report.train_clips == 3 and report.eval_clips == 1 and report.train_frames == 18
    vae = SDVAE(SDVAEConfig(weights=str(folder)))
    assert vae.latent_channels == 4 and vae.downsample == 2
    assert vae.scaling_factor == pytest.approx(report.scaling_factor)
    # The scale was fitted on the held-out clip (clip2)'s frames: there the scaled latents have std 1 (A1).
    held = torch.from_numpy(_sources()[2].frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        latents = vae.encode(held)
    assert latents.shape == (6, 4, 8, 8)
    assert float(latents.std()) == pytest.approx(1.0, rel=1e-4)
    assert not list(tmp_path.glob(".vae.*"))  # no temporary folder left behind


def test_training_lowers_the_reconstruction_loss(tmp_path):
    config = AutoencoderTrainingConfig(steps=60, lr=3e-3, **TINY)
    report = train_autoencoder(_sources(), config, tmp_path / "vae")
    assert report.last_loss < 0.6 * report.first_loss
    assert report.eval_psnr > 12.0


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


def test_colour_augment_recolours_the_training_frames_and_is_checked_in_unseen_colours(tmp_path):
    plain = train_autoencoder(_sources(), AutoencoderTrainingConfig(steps=4, **TINY), tmp_path / "plain")
    zero = AutoencoderTrainingConfig(steps=4, colour_augment={"shift": 0.0}, **TINY)
    train_autoencoder(_sources(), zero, tmp_path / "zero")
    on = AutoencoderTrainingConfig(steps=4, colour_augment={"shift": 0.3, "gain": 0.1}, **TINY)
    augmented = train_autoencoder(_sources(), on, tmp_path / "on")
    before, off, after = (_weights(tmp_path / name) for name in ("plain", "zero", "on"))
    # Off draws nothing: the same weights as a run without the option; on trains on other frames.
    assert all(torch.equal(before[k], off[k]) for k in before)
    assert not all(torch.equal(before[k], after[k]) for k in before)
    assert read_record(tmp_path / "on")["training"]["colour_augment"] == {"shift": 0.3, "gain": 0.1}
    for report in (plain, augmented):
        assert np.isfinite(report.eval_recoloured_psnr) and report.eval_recoloured_psnr > 0
    assert read_record(tmp_path / "on")["report"]["eval_recoloured_psnr"] == augmented.eval_recoloured_psnr


def test_a_failed_write_leaves_the_old_folder_untouched(tmp_path, monkeypatch):
    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "keep.txt").write_text("old")
    from diffusers import AutoencoderKL

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(AutoencoderKL, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        train_autoencoder(_sources(), AutoencoderTrainingConfig(steps=1, **TINY), folder)
    assert (folder / "keep.txt").read_text() == "old" and not list(tmp_path.glob(".vae.*"))


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match="norm_num_groups"):
        AutoencoderTrainingConfig(block_out_channels=(12,), norm_num_groups=8)
    with pytest.raises(MemoZooError, match="do not divide"):
        train_autoencoder([FrameSource("a", np.zeros((2, 18, 18, 3), np.uint8))],
                          AutoencoderTrainingConfig(steps=1, block_out_channels=(8, 8, 8), norm_num_groups=4),
                          "/nonexistent/never-written")


# ---- the task: which folder, reuse, refuse, retrain ------------------------------------------------


def _context(registry, workdir: Path, records=(), weights="checkpoints/vae"):
    """A run context; relative weights paths resolve against the current directory, as sd_vae's do
    (the tests chdir into ``workdir`` with the ``workdir`` fixture)."""
    recipe = validate_document({
        "name": "v", "task": {"kind": "train_vae"},
        "model": {"vae": {"kind": "sd_vae", "weights": weights}},
        "data": {"dataset": {"kind": "talking_world"}}}, registry, "test")
    return SimpleNamespace(recipe=recipe, registry=DatasetRegistry(records), run=None, workdir=workdir,
                           variant=None)


def test_target_is_where_sd_vae_will_look(registry, tmp_path, monkeypatch):
    from memo_zoo.errors import MissingWeightsError

    recipe = _context(registry, tmp_path).recipe
    assert TrainVAEConfig().target_folder(recipe) == Path("checkpoints/vae")
    assert TrainVAEConfig(out=Path("/abs/x")).target_folder(recipe) == Path("/abs/x")
    named = _context(registry, tmp_path, weights="myvae").recipe
    monkeypatch.delenv("MEMO_ZOO_WEIGHTS_DIR", raising=False)
    with pytest.raises(MissingWeightsError, match="MEMO_ZOO_WEIGHTS_DIR is not set"):
        TrainVAEConfig().target_folder(named)
    monkeypatch.setenv("MEMO_ZOO_WEIGHTS_DIR", str(tmp_path / "w"))
    assert TrainVAEConfig().target_folder(named) == tmp_path / "w/myvae"
    pixel = validate_document({"name": "v", "task": {"kind": "train_vae"}, "model": {"vae": {"kind": "pixel"}}},
                              registry, "test")
    with pytest.raises(MemoZooError, match="needs model.vae: {kind: sd_vae"):
        TrainVAEConfig().target_folder(pixel)


def test_task_trains_from_the_dataset_then_reuses_and_refuses(registry, workdir, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    records = [ClipRecord(clip_id=f"c{i}", video=write_clip(tmp_path / f"c{i}.mp4")) for i in range(3)]
    context = _context(registry, tmp_path, records)
    options = TrainVAEConfig(steps=2, size=32, **TINY)
    folder = TrainVAETask(options).ensure(context)
    record = read_record(folder)
    assert (tmp_path / folder / "reconstructions.png").is_file()  # the folder carries its own evidence
    assert record["data"]["clips"] == 3 and record["size"] == 32 and record["report"]["train_frames"] == 32

    def no_training(*args, **kwargs):
        raise AssertionError("the folder should have been reused")

    monkeypatch.setattr(task_module, "train_autoencoder", no_training)
    assert TrainVAETask(options).ensure(context) == folder  # same options: reused
    with pytest.raises(MemoZooError, match="other options.*steps"):
        TrainVAETask(options.model_copy(update={"steps": 3})).ensure(context)
    monkeypatch.undo()
    monkeypatch.setenv("MEMO_ZOO_CACHE_DIR", str(tmp_path / "cache"))
    retrained = TrainVAETask(options.model_copy(update={"steps": 3, "overwrite": True})).ensure(context)
    assert read_record(retrained)["training"]["steps"] == 3
    monkeypatch.setattr(task_module, "train_autoencoder", no_training)
    # A folder trained before colour_augment existed matches options that leave it at its default...
    def later(colour):
        return TrainVAEConfig.model_validate({**options.model_dump(), "steps": 3, "colour_augment": colour})

    assert TrainVAETask(later({"shift": 0.0})).ensure(context) == folder
    # ...and not options that set it.
    with pytest.raises(MemoZooError, match="other options.*colour_augment"):
        TrainVAETask(later({"shift": 0.2})).ensure(context)


def test_a_folder_without_a_record_is_used_as_brought(registry, workdir, tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints/vae"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    monkeypatch.setattr(task_module, "train_autoencoder", lambda *a, **k: pytest.fail("must not train"))
    context = _context(registry, tmp_path)
    assert (tmp_path / TrainVAETask(TrainVAEConfig()).ensure(context)) == folder
    with pytest.raises(MemoZooError, match="did not train"):
        TrainVAETask(TrainVAEConfig()).run(context)
    assert not (folder / RECORD_FILE).exists()


def test_the_dataset_must_give_frames(registry, workdir, tmp_path):
    with pytest.raises(MemoZooError, match="no frames"):
        TrainVAETask(TrainVAEConfig(steps=1, **TINY)).ensure(_context(registry, tmp_path, records=[]))


def test_reconstruction_figure_shows_frames_over_reconstructions(tmp_path):
    from PIL import Image

    from memo_zoo_plugins.vae.autoencoder_training import build_autoencoder, reconstruction_figure

    vae = build_autoencoder(AutoencoderTrainingConfig(**TINY), 16)
    frames = _sources()[0].frames[:3]
    path = reconstruction_figure(vae, frames, tmp_path / "fig.png", zoom=2)
    image = np.asarray(Image.open(path))
    assert image.shape == (2 * 16 * 2, 3 * 16 * 2, 3)
    assert np.array_equal(image[:32:2, :32:2], frames[0])  # top row: the frames themselves, zoomed
