"""The ``audio_fusion`` slot (spec §3, E1-E3): the audio module in every Diffusion Net block."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot

if TYPE_CHECKING:  # annotations only: the slot table is imported by `memo-zoo --help`, which loads no torch
    from pydantic import BaseModel
    from torch import Tensor


@runtime_checkable
class AudioFusionModule(Protocol):
    """Contract of an audio-fusion-slot component (spec E1-E3).

    ``factory(config, channels=C, audio_dim=A)`` returns an ``nn.Module`` called as
    ``module(video, audio, emotion) -> (video_out, audio_out)``. A host may also pass optional
    build args, each only to factories whose signature names it (``memo_zoo.slots.slot.call_factory``):

    - ``inner_channels``: the module's attention width where the host fixes one that differs from
      C (the released network, README Q6: a 1x1 projection C -> inner and back); None or absent
      means C.
    - ``final``: True for the last site of the network, whose audio output nobody reads; a
      component may then leave out its audio output layers (the released checkpoint has none
      there) and return ``audio`` itself as ``audio_out``.
    - ``heads``: the attention heads the host uses at this site (the released UNet's per-level
      ``attention_head_dim``); absent means the component's own option.
    - ``norm_groups``: the GroupNorm groups the host uses at this site (the released UNet's
      ``norm_num_groups``); absent means the component's own option.

    The call:

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

    A host that knows more about a site passes it through
    ``call_factory(factory, {"channels": C, "audio_dim": A}, {"inner_channels": ..., "final": ...,
    "heads": ..., "norm_groups": ...})`` (``memo_zoo.slots.slot``; meanings in
    ``AudioFusionModule``): each optional one reaches only a component whose function
    (``factory.build`` when the factory has one, else the factory) names it or takes
    ``**kwargs``.
    """

    config: BaseModel

    def __call__(self, *, channels: int, audio_dim: int, **optional: Any) -> AudioFusionModule: ...


SLOT = Slot(
    name="audio_fusion",
    recipe_path="model.audio_fusion",
    description="audio module (spec §3)",
    summary="audio module in every Diffusion Net block, with emotion conditioning (spec §3)",
    protocol=AudioFusionModule,
    build_args=("channels", "audio_dim"),
    optional_build_args=("inner_channels", "final", "heads", "norm_groups"),
    smoke_build_args={"channels": 32, "audio_dim": 16},
)
