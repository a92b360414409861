"""The ``none`` temporal component: no temporal mixing at all (ablation floor for spec §2)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import NoTemporalConfig
from .context import check_motion


@dataclass(frozen=True)
class EmptyContext:
    """Context of :class:`IdentityTemporal`: holds nothing but the batch size it was made for."""

    batch: int


class IdentityTemporal(nn.Module):
    """Returns its input unchanged and keeps no memory; it has no parameters."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def new_context(self, batch: int) -> EmptyContext:
        return EmptyContext(batch=batch)

    def update_context(self, ctx: EmptyContext, motion: Tensor) -> EmptyContext:
        check_motion(motion, ctx.batch, self.channels)
        return ctx

    def forward(self, x: Tensor, ctx: EmptyContext | None = None) -> Tensor:
        return x


def build(config: NoTemporalConfig, channels: int) -> IdentityTemporal:
    """Factory of the ``none`` temporal component."""
    return IdentityTemporal(channels)
