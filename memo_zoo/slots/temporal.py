"""The ``temporal`` slot (spec §2, T1-T7): the temporal module in every Diffusion Net block.

Its caller owns a *context* per video: ``new_context`` makes an empty one, ``update_context`` folds
in the clean motion frames of the previous clip once per clip (T6), and ``forward`` only reads it,
so every denoising step of a clip (and both classifier-free-guidance branches) can share one
context at no extra cost. The built-ins' shared parts (per-frame norms, token reshapes, shape
checks) are in ``memo_zoo_plugins.temporal.context``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot

if TYPE_CHECKING:  # annotations only: the slot table is imported by `memo-zoo --help`, which loads no torch
    from pydantic import BaseModel
    from torch import Tensor


@runtime_checkable
class TemporalModule(Protocol):
    """Contract of a temporal-slot component (spec T1-T7).

    ``factory(config, channels=C)`` returns an ``nn.Module`` with these methods:

    - ``new_context(batch)``: an empty context for ``batch`` videos; the caller owns it.
    - ``update_context(ctx, motion)``: ``motion`` is (B, Fm, C, H, W), the features at this layer of
      the clean motion frames (the previous clip's frames; T6). Returns a NEW context; ``ctx`` is
      left untouched, so an old context stays valid.
    - ``module(x, ctx)``: ``x`` is (B, F, C, H, W); returns the same shape and dtype. Reads ``ctx``,
      never mutates it. Residual with a zero-initialised output projection (A6), so a freshly built
      module returns ``x`` exactly.
    """

    def new_context(self, batch: int) -> Any: ...

    def update_context(self, ctx: Any, motion: Tensor) -> Any: ...

    def __call__(self, x: Tensor, ctx: Any = None) -> Tensor: ...


class TemporalFactory(Protocol):
    """What the Diffusion Net is given to build its temporal modules, one per site.

    ``config`` is the chosen component's validated config, ``kind`` included (saved with the
    network); ``factory(channels=C)`` builds one module for a site of width C. The code that
    reads the recipe makes it (``memo_zoo.recipe.components.component_factory``).
    """

    config: BaseModel

    def __call__(self, *, channels: int) -> TemporalModule: ...


SLOT = Slot(
    name="temporal",
    recipe_path="model.temporal",
    description="temporal module (spec §2)",
    summary="temporal module in every Diffusion Net block: memory / motion-frame context (spec §2)",
    protocol=TemporalModule,
    build_args=("channels",),
    smoke_build_args={"channels": 32},
)
