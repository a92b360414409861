"""Protocols of the encoder, autoencoder, sampler and emotion slots (what hosts may call).

The temporal and audio-fusion protocols live beside their components
(``memo_zoo_plugins.temporal.context.TemporalModule``,
``memo_zoo_plugins.audio_fusion.protocol.AudioFusionModule``); the contract-test kit
(``memo_zoo.testing``) checks a component against its protocol, and
``tests/plugins/test_contracts.py`` runs it over every registered component.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class AudioEncoder(Protocol):
    """Waveform -> per-video-frame audio tokens (spec A5). Built by ``factory(config)``.

    ``token_count`` (T) and ``token_dim`` (A) are fixed by the config. ``encode(waveform,
    num_frames, fps, pad_frames=0)``: ``waveform`` (B, S) mono float32 at 16 kHz covering
    ``num_frames + 2 * pad_frames`` video frames; returns (B, num_frames, T, A) for the central
    ``num_frames`` frames, each frame's tokens computed from a window of neighbouring frames
    (default +-2). ``pad_frames`` lets a clip's edge frames see their real neighbours.
    Trainable encoders are nn.Modules whose parameters the trainer optimises; frozen pretrained
    ones (wav2vec2) keep ``requires_grad=False`` on the backbone.
    """

    token_count: int
    token_dim: int

    def encode(self, waveform: Tensor, num_frames: int, fps: float, pad_frames: int = 0) -> Tensor: ...


@runtime_checkable
class ImageEncoder(Protocol):
    """Reference image -> one embedding per image (spec A4). Built by ``factory(config)``.

    ``encode(images)``: (B, 3, H, W) float in [-1, 1] -> (B, embed_dim). The network's image
    projector turns the embedding into cross-attention tokens.
    """

    embed_dim: int

    def encode(self, images: Tensor) -> Tensor: ...


@runtime_checkable
class Autoencoder(Protocol):
    """Frames <-> latents (spec A1). Built by ``factory(config)``.

    ``encode``: (N, 3, H, W) in [-1, 1] -> (N, latent_channels, H / downsample, W / downsample),
    already multiplied by the scaling factor; ``decode`` inverts it.
    """

    latent_channels: int
    downsample: int

    def encode(self, frames: Tensor) -> Tensor: ...

    def decode(self, latents: Tensor) -> Tensor: ...


@runtime_checkable
class Sampler(Protocol):
    """Integrator of the rectified-flow ODE from noise (t = 1) to data (t = 0) (spec L1, I3).

    ``timesteps()``: ``steps + 1`` decreasing times from 1 to 0. ``step(sample, velocity, t,
    t_next)`` advances one step given the velocity at ``(sample, t)``. Multi-evaluation
    solvers (Heun) also expose ``evaluations_per_step`` and a ``solve(sample, velocity_fn)``
    that calls ``velocity_fn(sample, t)`` as often as they need.
    """

    def timesteps(self) -> Tensor: ...

    def step(self, sample: Tensor, velocity: Tensor, t: float, t_next: float) -> Tensor: ...


@runtime_checkable
class EmotionDetector(Protocol):
    """Audio -> emotion label index per video frame (spec E4, E5). Built by ``factory(config)``.

    ``labels``: the label names in index order. ``frame_labels(audio, sample_rate, fps,
    num_frames)`` -> LongTensor (num_frames,); segment labels (the most frequent frame label
    per clip) are derived from these by ``memo_zoo.emotion``-level helpers.
    """

    labels: tuple[str, ...]

    def frame_labels(self, audio: Tensor, sample_rate: int, fps: float, num_frames: int) -> torch.Tensor: ...
