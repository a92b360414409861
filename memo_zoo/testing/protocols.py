"""Contracts of the slots whose components follow a protocol the kit can check with no data
(scheduler, vae, audio and image encoders, emotion detector: ``memo_zoo.slots.<slot>``) and of
the task slot.

These components are built by ``factory(config)``; the ones that load local weights need those
paths as ``options``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from memo_zoo.slots.audio_encoder import AudioEncoder
from memo_zoo.slots.emotion_detector import EmotionDetector
from memo_zoo.slots.image_encoder import ImageEncoder
from memo_zoo.slots.scheduler import Sampler
from memo_zoo.slots.vae import Autoencoder
from memo_zoo.testing.build import build_component, expect, randn


def _is(component: Any, protocol: type, slot: str) -> None:
    """``isinstance`` against a runtime-checkable protocol, naming the members the component lacks."""
    members = set(vars(protocol).get("__annotations__", {})) | {
        name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}
    missing = sorted(name for name in members if not hasattr(component, name))
    expect(isinstance(component, protocol),
           f"a {slot} component must follow {protocol.__module__}.{protocol.__qualname__}; "
           f"{type(component).__name__} lacks {', '.join(missing) or 'part of it'}")


def check_scheduler(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """Timesteps decrease from 1 (noise) to 0 (data), and a straight path is followed exactly (spec L1)."""
    sampler = build_component("scheduler", entry, options)
    _is(sampler, Sampler, "scheduler")
    t = sampler.timesteps()
    expect(float(t[0]) == 1.0 and float(t[-1]) == 0.0 and bool(torch.all(t[1:] < t[:-1])),
           f"timesteps must decrease strictly from 1 to 0, got {t.tolist()}")
    z0, eps = randn(0, 2, 3), randn(1, 2, 3)
    x = eps
    for now, nxt in zip(t[:-1], t[1:]):
        x = sampler.step(x, eps - z0, float(now), float(nxt))
    expect(torch.allclose(x, z0, atol=1e-5), "a straight path must be followed exactly (spec L1)")


def check_vae(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """``encode`` gives (N, latent_channels, H / downsample, W / downsample); ``decode`` gives frames back."""
    vae = build_component("vae", entry, options)
    _is(vae, Autoencoder, "vae")
    frames = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    latents = vae.encode(frames)
    expected = (2, vae.latent_channels, 16 // vae.downsample, 16 // vae.downsample)
    expect(latents.shape == expected, f"encode gave {tuple(latents.shape)} for 16x16 frames, expected {expected}")
    decoded = vae.decode(latents)
    expect(decoded.shape == frames.shape, f"decode gave {tuple(decoded.shape)}, expected {tuple(frames.shape)}")


def check_audio_encoder(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """``encode`` of a padded 16 kHz waveform gives finite (B, frames, token_count, token_dim) tokens (A5)."""
    encoder = build_component("audio_encoder", entry, options)
    _is(encoder, AudioEncoder, "audio_encoder")
    fps, frames, pad = 25.0, 6, 2
    waveform = randn(0, 2, (frames + 2 * pad) * 640) * 0.1  # 640 samples per frame: 16 kHz at 25 fps
    tokens = encoder.encode(waveform, frames, fps, pad_frames=pad)
    expected = (2, frames, encoder.token_count, encoder.token_dim)
    expect(tokens.shape == expected, f"encode gave {tuple(tokens.shape)}, expected {expected}")
    expect(torch.isfinite(tokens).all(), "non-finite audio tokens")


def check_image_encoder(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """``encode`` of (B, 3, H, W) images in [-1, 1] gives finite (B, embed_dim) embeddings (A4)."""
    encoder = build_component("image_encoder", entry, options)
    _is(encoder, ImageEncoder, "image_encoder")
    embedding = encoder.encode(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    expect(embedding.shape == (2, encoder.embed_dim),
           f"encode gave {tuple(embedding.shape)}, expected (2, {encoder.embed_dim})")
    expect(torch.isfinite(embedding).all(), "non-finite image embedding")


def check_emotion_detector(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """``frame_labels`` gives one label index per video frame, each within the detector's ``labels``."""
    detector = build_component("emotion_detector", entry, options)
    _is(detector, EmotionDetector, "emotion_detector")
    labels = detector.frame_labels(torch.zeros(16000 * 2), 16000, 25.0, 50)
    expect(labels.shape == (50,) and labels.dtype == torch.long,
           f"frame_labels gave {tuple(labels.shape)} {labels.dtype} for 50 frames, expected (50,) torch.int64")
    expect(int(labels.min()) >= 0 and int(labels.max()) < len(detector.labels),
           f"label indices {sorted(set(labels.tolist()))} outside 0..{len(detector.labels) - 1}")


def check_task(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """The built task has ``run(context)``, which ``memo-zoo run`` calls."""
    task = build_component("task", entry, options)
    expect(callable(getattr(task, "run", None)), f"a task must have run(context); {type(task).__name__} has none")
