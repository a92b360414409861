"""The ``audio_fusion`` slot (spec §3, E1-E3): the audio module in every Diffusion Net block."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot

if TYPE_CHECKING:  # annotations only: the slot table is imported by `memo-zoo --help`, which loads no torch
    from pydantic import BaseModel
    from torch import Tensor


@runtime_checkable
class AudioFusionModule(Protocol):
    """Contract of an audio-fusion-slot component (spec E1-E3).

    ``factory(config, channels=C, audio_dim=A)`` returns an ``nn.Module`` called as
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


class AudioFusionFactory(Protocol):
    """What the Diffusion Net is given to build its audio modules, one per site.

    ``config`` is the chosen component's validated config, ``kind`` included (saved with the
    network); ``factory(channels=C, audio_dim=A)`` builds one module for a site of width C fed
    audio tokens of width A. The code that reads the recipe makes it
    (``memo_zoo.recipe.components.component_factory``).
    """

    config: BaseModel

    def __call__(self, *, channels: int, audio_dim: int) -> AudioFusionModule: ...


SLOT = Slot(
    name="audio_fusion",
    recipe_path="model.audio_fusion",
    description="audio module (spec §3)",
    summary="audio module in every Diffusion Net block, with emotion conditioning (spec §3)",
    protocol=AudioFusionModule,
    build_args=("channels", "audio_dim"),
    smoke_build_args={"channels": 32, "audio_dim": 16},
)
