"""The ``audio_encoder`` slot (spec A5): waveform -> per-video-frame audio tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot

if TYPE_CHECKING:  # annotations only: the slot table is imported by `memo-zoo --help`, which loads no torch
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


SLOT = Slot(
    name="audio_encoder",
    recipe_path="model.audio_encoder",
    description="audio encoder (spec A5)",
    summary="audio -> per-frame audio tokens (spec A5)",
    protocol=AudioEncoder,
)
