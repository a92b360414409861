"""The ``image_encoder`` slot (spec A4): reference image -> the embedding behind the context tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot

if TYPE_CHECKING:  # annotations only: the slot table is imported by `memo-zoo --help`, which loads no torch
    from torch import Tensor


@runtime_checkable
class ImageEncoder(Protocol):
    """Reference image -> one embedding per image (spec A4). Built by ``factory(config)``.

    ``encode(images)``: (B, 3, H, W) float in [-1, 1] -> (B, embed_dim). The network's image
    projector turns the embedding into cross-attention tokens.
    """

    embed_dim: int

    def encode(self, images: Tensor) -> Tensor: ...


SLOT = Slot(
    name="image_encoder",
    recipe_path="model.image_encoder",
    description="image encoder (spec A4)",
    summary="reference image -> cross-attention context tokens (spec A4)",
    protocol=ImageEncoder,
)
