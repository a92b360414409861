"""The ``vae`` slot (spec A1): the autoencoder between frames and latents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot

if TYPE_CHECKING:  # annotations only: the slot table is imported by `memo-zoo --help`, which loads no torch
    from torch import Tensor


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


SLOT = Slot(
    name="vae",
    recipe_path="model.vae",
    description="autoencoder (spec A1)",
    summary="frames <-> latents (spec A1)",
    protocol=Autoencoder,
)
