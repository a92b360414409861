"""The audio-fusion slot's contract (spec §3; hook ``audio_fusion_components``).

An audio-fusion module is built by ``factory(config, channels, audio_dim)``; ``forward(video,
audio, emotion)`` takes per-frame video tokens (N, L, channels), audio tokens (N, T, audio_dim)
and emotion class indices (N,) or None, and returns the updated ``(video, audio)``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from memo_zoo.slots import SLOT_BY_NAME
from memo_zoo.testing.build import build_component, expect, expect_gradients, perturb, perturbed_pair, randn

SLOT = "audio_fusion"
CHANNELS = SLOT_BY_NAME[SLOT].smoke_build_args["channels"]
AUDIO_DIM = SLOT_BY_NAME[SLOT].smoke_build_args["audio_dim"]
DTYPES = (torch.float32, torch.bfloat16)


def tokens(seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded video tokens (6, 12, channels), audio tokens (6, 4, audio_dim) and one emotion per frame."""
    video = randn(seed, 6, 12, CHANNELS, dtype=dtype)
    audio = randn(seed + 1000, 6, 4, AUDIO_DIM, dtype=dtype)
    emotion = torch.tensor([0, 1, 2, 3, 4, 5])
    return video, audio, emotion


def check_identity_at_init(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """A new module returns both streams unchanged, with emotion labels and without (None)."""
    module = build_component(SLOT, entry, options)
    video, audio, emotion = tokens(0)
    for label in (emotion, None):
        v, a = module(video, audio, label)
        expect(torch.equal(v, video) and torch.equal(a, audio),
               f"a new audio-fusion module must be the identity (emotion={'None' if label is None else 'labels'})")


def check_shapes_and_dtype(entry: Any, dtype: torch.dtype = torch.float32,
                           options: Mapping[str, Any] | None = None) -> None:
    """Once trained (perturbed), both streams keep their shapes and ``dtype`` and stay finite."""
    module = build_component(SLOT, entry, options).to(dtype)
    perturb(module)
    video, audio, emotion = tokens(0, dtype)
    v, a = module(video, audio, emotion)
    expect((v.shape, a.shape, v.dtype, a.dtype) == (video.shape, audio.shape, dtype, dtype),
           f"in video {tuple(video.shape)}, audio {tuple(audio.shape)} {dtype}; out video {tuple(v.shape)} "
           f"{v.dtype}, audio {tuple(a.shape)} {a.dtype}: shapes and dtype must be kept")
    expect(torch.isfinite(v.float()).all() and torch.isfinite(a.float()).all(), f"non-finite output in {dtype}")


def check_gradients(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """Gradients reach every parameter (none is left out of training)."""
    module = build_component(SLOT, entry, options)
    perturb(module)
    video, audio, emotion = tokens(0)
    video.requires_grad_()
    v, a = module(video, audio, emotion)
    (v.square().sum() + a.square().sum()).backward()
    expect_gradients(module)


def check_state_dict(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """A state dict carries the whole function: loaded into a differently seeded build, outputs agree."""
    first, second = perturbed_pair(SLOT, entry, options)
    video, audio, emotion = tokens(0)
    for name, x, y in zip(("video", "audio"), first(video, audio, emotion), second(video, audio, emotion)):
        expect(torch.equal(x, y), f"loading a state dict must reproduce the {name} output")


def check_audio_fusion(entry: Any, options: Mapping[str, Any] | None = None) -> None:
    """Every check of the audio-fusion contract, shapes and dtype in float32 and bfloat16."""
    check_identity_at_init(entry, options)
    for dtype in DTYPES:
        check_shapes_and_dtype(entry, dtype, options)
    check_gradients(entry, options)
    check_state_dict(entry, options)
