"""Training a small diffusers ``AutoencoderKL`` on a dataset's frames (spec A1 for the CPU default).

MEMO runs its diffusion in the latent space of SD1.5's VAE (A1): 4 channels, 8x smaller sides. The
tiny CPU model cannot load that VAE (no downloads, and 512 px would not fit the CPU budget), and
the identity ``pixel`` VAE gives latents far wider than the tiny UNet: 8x8 pixel patches are 192
channels per position against 32 channels in the UNet's first level, so the net cannot carry the
noise of a patch through its first convolution and samples keep their noise (docs/results.md).
This module trains the same kind of autoencoder as SD's, only small, on the frames it will encode:
a KL-regularised ``AutoencoderKL`` (diffusers' class, so the ``sd_vae`` component loads the result
through the very code that loads SD1.5's VAE).

Objective: L1 + ``l2_weight`` MSE on pixels in [-1, 1], plus ``kl_weight`` x the KL divergence of
the posterior (summed over the latent, mean over the batch), as in SD's VAE without its perceptual
and adversarial terms (those need pretrained VGG / a discriminator schedule; at 64 px L1 + MSE
keeps the mouth). Training frames are drawn uniformly over all frames of the training clips;
every ``eval_every``-th clip (in clip-id order) is held out for the reconstruction figures.

The latent scale is fitted afterwards as SD's was: ``scaling_factor = 1 / std`` of the posterior
means of held-out frames, so the diffusion sees latents of unit variance (``network.data_std = 1``).

Output, written atomically (a temporary folder renamed into place): a diffusers folder
(``config.json`` + ``diffusion_pytorch_model.safetensors``), ``memo_zoo_vae.json``, the record of
what was trained on what (options, clips, frames) and how well it reconstructs held-out frames, and
``reconstructions.png``, eight held-out frames over their reconstructions.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from memo_zoo.errors import MemoZooError
from memo_zoo.train.colour_augment import ColourJitterConfig, draw_transform
from memo_zoo.train.step_loop import StepLoop
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.vae.configs import LATER_FIELDS, AutoencoderTrainingConfig, without_later_defaults  # noqa: F401

RECORD_FILE = "memo_zoo_vae.json"
FIGURE_FILE = "reconstructions.png"
RECORD_FORMAT = "memo-zoo/trained-vae"
# The held-out check in unseen colours: each frame recoloured by an offset of up to 0.25 per channel.
EVAL_RECOLOUR = ColourJitterConfig(shift=0.25)


@dataclass
class FrameSource:
    """Frames of one clip, (T, H, W, 3) uint8 (a memory map is fine: frames are read per draw)."""

    clip_id: str
    frames: np.ndarray


@dataclass
class AutoencoderReport:
    """What ``train_autoencoder`` measured (also written to ``memo_zoo_vae.json``)."""

    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    eval_l1: float
    eval_psnr: float
    eval_recoloured_psnr: float
    scaling_factor: float
    train_clips: int
    eval_clips: int
    train_frames: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def build_autoencoder(config: AutoencoderTrainingConfig, size: int) -> Any:
    """A fresh diffusers AutoencoderKL of ``config``'s geometry for ``size`` px frames."""
    from diffusers import AutoencoderKL

    if size % config.downsample:
        raise MemoZooError(f"frames of {size} px do not divide by the autoencoder's downsampling "
                           f"{config.downsample} (block_out_channels {list(config.block_out_channels)})")
    levels = len(config.block_out_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels,
                         block_out_channels=tuple(config.block_out_channels),
                         layers_per_block=config.layers_per_block, latent_channels=config.latent_channels,
                         norm_num_groups=config.norm_num_groups, sample_size=size)


def split_sources(sources: Sequence[FrameSource], every: int) -> tuple[list[FrameSource], list[FrameSource]]:
    """(train, held-out): every ``every``-th clip in clip-id order is held out (at least one when
    there are two or more clips, none when there is one)."""
    ordered = sorted(sources, key=lambda s: s.clip_id)
    held = [s for i, s in enumerate(ordered) if i % every == every - 1]
    if not held and len(ordered) > 1:
        held = [ordered[-1]]
    kept = [s for s in ordered if s not in held]
    return kept, held


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _draw(sources: Sequence[FrameSource], offsets: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` frames drawn uniformly over every frame of ``sources`` (``offsets``: cumulative counts)."""
    picks = np.sort(rng.integers(0, offsets[-1], size=count))
    clip = np.searchsorted(offsets, picks, side="right") - 1
    return np.stack([sources[c].frames[p - offsets[c]] for c, p in zip(clip, picks)])


def eval_frames(sources: Sequence[FrameSource], count: int) -> np.ndarray:
    """Up to ``count`` frames spread evenly over the held-out clips (deterministic)."""
    every = [(s, i) for s in sources for i in range(len(s.frames))]
    index = np.linspace(0, len(every) - 1, num=min(count, len(every))).round().astype(int)
    return np.stack([every[i][0].frames[every[i][1]] for i in index])


@torch.no_grad()
def reconstruct(vae: Any, frames: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(posterior means, reconstructions) of frames (N, 3, H, W) in [-1, 1], in chunks."""
    means, outs = [], []
    for start in range(0, frames.shape[0], batch):
        mean = vae.encode(frames[start:start + batch]).latent_dist.mean
        means.append(mean)
        outs.append(vae.decode(mean).sample)
    return torch.cat(means), torch.cat(outs)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = float(((a.clamp(-1, 1) - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def train_autoencoder(sources: Sequence[FrameSource], config: AutoencoderTrainingConfig, out_dir: str | Path,
                      data: dict[str, Any] | None = None,
                      log: Callable[[dict[str, float], int], None] | None = None) -> AutoencoderReport:
    """Train on ``sources``, write the diffusers folder + record to ``out_dir`` atomically; see the module doc.

    ``data`` describes the training data for the record (dataset config, ...); ``log(metrics, step)``
    receives the loss every 25 steps (MLflow).
    """
    out_dir = Path(out_dir)
    usable = [s for s in sources if len(s.frames)]
    if not usable:
        raise MemoZooError("training the autoencoder: the dataset gave no frames")
    size = int(usable[0].frames.shape[1])
    for source in usable:
        if source.frames.shape[1:] != (size, size, 3):
            raise MemoZooError(f"training the autoencoder: clip {source.clip_id} has frames of shape "
                               f"{tuple(source.frames.shape[1:])}, expected ({size}, {size}, 3)")
    train, held = split_sources(usable, config.eval_every)
    held = held or train  # a single clip: check on it (the record says 0 held-out clips)
    torch.manual_seed(config.seed)
    vae = build_autoencoder(config, size)
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps, eta_min=config.lr / 10)
    rng = np.random.default_rng(config.seed)
    colour = torch.Generator().manual_seed(config.seed)  # its own stream: off leaves the frame draws as they were
    offsets = np.concatenate([[0], np.cumsum([len(s.frames) for s in train])])
    started = time.perf_counter()
    first = last = float("nan")
    window: list[float] = []
    # The shared step loop: the bar, and Ctrl-C / SIGTERM taken after the step under way (no checkpoints:
    # the folder is written whole at the end or not at all).
    with StepLoop(config.steps, "train autoencoder") as loop:
        for step in loop:
            x = _to_tensor(_draw(train, offsets, rng, config.batch_size))
            if config.colour_augment.enabled:
                x = draw_transform(len(x), config.colour_augment, colour).apply(x)
            posterior = vae.encode(x).latent_dist
            out = vae.decode(posterior.sample(generator=None)).sample
            loss = ((out - x).abs().mean() + config.l2_weight * ((out - x) ** 2).mean()
                    + config.kl_weight * posterior.kl().mean())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            with loop.update():
                optimizer.step()
                schedule.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise MemoZooError(f"training the autoencoder: the loss became {value} at step {step}; lower lr "
                                   f"(now {config.lr})")
            first = value if step == 0 else first
            window.append(value)
            if len(window) == 25 or step == config.steps - 1:
                last = sum(window) / len(window)
                if log is not None:
                    log({"vae.loss": last, "vae.lr": schedule.get_last_lr()[0]}, step + 1)
                window = []
    vae.eval()
    frames = _to_tensor(eval_frames(held, config.eval_frames))
    means, outs = reconstruct(vae, frames)
    std = float(means.std())
    if not std > 0:
        raise MemoZooError("training the autoencoder: the latents of the held-out frames are constant")
    vae.register_to_config(scaling_factor=1.0 / std)
    recoloured = draw_transform(len(frames), EVAL_RECOLOUR, torch.Generator().manual_seed(0)).apply(frames)
    recoloured_psnr = psnr(reconstruct(vae, recoloured)[1], recoloured)
    report = AutoencoderReport(
        steps=config.steps, seconds=time.perf_counter() - started, first_loss=first, last_loss=last,
        eval_l1=float((outs.clamp(-1, 1) - frames).abs().mean()), eval_psnr=psnr(outs, frames),
        eval_recoloured_psnr=recoloured_psnr,
        scaling_factor=1.0 / std, train_clips=len(train), eval_clips=0 if held is train else len(held),
        train_frames=int(offsets[-1]))
    record = {"format": RECORD_FORMAT, "version": 1, "training": training_options(config),
              "size": size, "data": data or {}, "report": report.as_dict()}
    _write_folder(vae, record, eval_frames(held, 8), out_dir)
    return report


def training_options(config: AutoencoderTrainingConfig) -> dict[str, Any]:
    """The options that shape the weights, as JSON (a subclass's extra fields, e.g. where to write, left out;
    later-added options at their default too, so earlier folders' records still match)."""
    return without_later_defaults(config.model_dump(mode="json", include=set(AutoencoderTrainingConfig.model_fields)))


def _write_folder(vae: Any, record: dict[str, Any], figure_frames: np.ndarray, out_dir: Path) -> None:
    """Save into a temporary sibling folder, then rename it to ``out_dir`` (readers see all or nothing)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        vae.save_pretrained(str(temp), safe_serialization=True)
        (temp / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        reconstruction_figure(vae, figure_frames, temp / FIGURE_FILE)
        if out_dir.exists():
            shutil.rmtree(out_dir)  # only a stale folder the caller chose to replace reaches here
        os.replace(temp, out_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def read_record(folder: str | Path) -> Optional[dict[str, Any]]:
    """The ``memo_zoo_vae.json`` of a trained folder, or None when it has none (or it is unreadable)."""
    path = Path(folder) / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == RECORD_FORMAT else None


def reconstruction_figure(vae: Any, frames: np.ndarray, path: str | Path, zoom: int = 3) -> Path:
    """A PNG with frames (top row) over their reconstructions (bottom row), each pixel ``zoom`` x
    ``zoom`` so that 64 px frames can be judged by eye; written atomically."""
    from PIL import Image

    from memo_zoo.atomic import write_atomically

    x = _to_tensor(frames)
    _, out = reconstruct(vae.eval(), x)
    pair = torch.cat([x, out.clamp(-1, 1)], dim=2)  # (N, 3, 2H, W)
    image = pair.add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
    strip = np.concatenate(list(image), axis=1).repeat(zoom, axis=0).repeat(zoom, axis=1)
    return write_atomically(path, lambda temp: Image.fromarray(strip).save(temp, format="PNG"))
