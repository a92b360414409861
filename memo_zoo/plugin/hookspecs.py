"""The hooks a memo-zoo plugin may implement: one per slot, plus one that adds CLI commands.

A plugin is any module or object reachable through the ``memo_zoo`` entry-point group that
defines functions with these names decorated by ``memo_zoo.plugin.hookimpl``. Every hook takes
no arguments and returns a list of typed records (``ComponentSpec`` or ``CommandSpec``); the
registry checks them and names the plugin when one is malformed or clashes with another.
"""

from __future__ import annotations

import pluggy

from memo_zoo.plugin.types import CommandSpec, ComponentSpec

PROJECT_NAME = "memo_zoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def temporal_components() -> list[ComponentSpec]:
    """Temporal modules placed in every Diffusion Net block (spec §2: T1-T7).

    Factory: ``factory(config, channels: int)``. The module owns no state between clips: it
    offers ``new_context(batch)``, ``update_context(ctx, motion)`` (once per clip, spec T6) and
    ``forward(x, ctx)`` on features shaped (batch, frames, channels, height, width), returning
    the same shape; its output projection starts at zero so that it starts as the identity (A6).
    """


@hookspec
def audio_fusion_components() -> list[ComponentSpec]:
    """Audio modules placed in every Diffusion Net block (spec §3: E1-E3).

    Factory: ``factory(config, channels: int, audio_dim: int)``. ``forward(video, audio,
    emotion)`` takes per-frame video tokens (N, L, channels), that frame's audio tokens
    (N, T, audio_dim) and emotion class indices (N,) or None, and returns the updated
    ``(video, audio)`` streams; the video output is residual and starts as the identity.
    """


@hookspec
def emotion_detector_components() -> list[ComponentSpec]:
    """Emotion detectors: audio -> one of the emotion classes per segment (spec E4, E5, §4).

    Factory: ``factory(config)``.
    """


@hookspec
def audio_encoder_components() -> list[ComponentSpec]:
    """Audio encoders: waveform -> per-video-frame audio tokens (spec A5). Factory: ``factory(config)``."""


@hookspec
def image_encoder_components() -> list[ComponentSpec]:
    """Image encoders: reference image -> cross-attention context tokens (spec A4).

    Factory: ``factory(config)``.
    """


@hookspec
def vae_components() -> list[ComponentSpec]:
    """Autoencoders between frames and latents (spec A1). Factory: ``factory(config)``.

    The component offers ``encode(frames)`` and ``decode(latents)`` on (N, C, H, W) tensors,
    frames in [-1, 1].
    """


@hookspec
def scheduler_components() -> list[ComponentSpec]:
    """Samplers of the rectified-flow ODE (spec L1, I3). Factory: ``factory(config)``.

    The sampler offers ``timesteps()`` (from noise, t=1, to data, t=0) and
    ``step(sample, velocity, t, t_next)``.
    """


@hookspec
def dataset_components() -> list[ComponentSpec]:
    """Datasets of talking-head clips in the layouts users already have (spec §11).

    Factory: ``factory(config)``.
    """


@hookspec
def preprocess_components() -> list[ComponentSpec]:
    """Stages of the data pipeline, each keeping or dropping a clip with a reason (spec §7).

    Factory: ``factory(config)``.
    """


@hookspec
def metric_components() -> list[ComponentSpec]:
    """Evaluation metrics (spec §8). Factory: ``factory(config)``."""


@hookspec
def task_components() -> list[ComponentSpec]:
    """What ``memo-zoo run`` does with a recipe, chosen by its ``task: {kind: ...}`` field.

    Factory: ``factory(config)`` returns an object with ``run(context) -> None`` where
    ``context`` is a ``memo_zoo.run.RunContext`` (the validated recipe, the registry, the
    MLflow run and a progress-bar helper).
    """


@hookspec
def cli_commands() -> list[CommandSpec]:
    """Subcommands added to the ``memo-zoo`` command line (e.g. ``memo-zoo generate``)."""
