"""The ``AudioFusionModule`` protocol every audio-fusion-slot component follows (spec §3, §10)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class AudioFusionModule(Protocol):
    """Contract of an audio-fusion-slot component (spec E1-E3).

    ``build(config, channels=C, audio_dim=A)`` returns an ``nn.Module`` called as
    ``module(video, audio, emotion) -> (video_out, audio_out)``:

    - ``video``: (N, L, C) tokens of one frame each (N = batch * frames, L = H * W).
    - ``audio``: (N, T, A) audio tokens of that frame (T = 32 by default, A5).
    - ``emotion``: LongTensor (N,) of class indices in [0, num_classes], where num_classes is the
      "no emotion" index used for classifier-free guidance; None means "no emotion" for all.
    - ``video_out``: same shape and dtype as ``video``; residual with a zero-initialised output
      projection, so a freshly built module returns ``video`` exactly (A6).
    - ``audio_out``: the audio stream handed to the next block (§10: two streams, SD3-style);
      components that do not update it return ``audio`` itself.
    """

    def __call__(self, video: Tensor, audio: Tensor, emotion: Tensor | None = None) -> tuple[Tensor, Tensor]: ...
