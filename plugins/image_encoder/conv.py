"""``conv``: a small trainable CNN image encoder for the CPU default (spec A4 without CLIP).

(B, 3, H, W) in [-1, 1] -> strided 3x3 convs (GroupNorm + SiLU) -> global average pool -> Linear
-> (B, embed_dim). Any H, W work (the pool is global). All parameters are trainable: with no
pretrained encoder the identity signal must be learnt with the network.
"""

from __future__ import annotations

from torch import Tensor, nn
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.image_encoder.configs import ConvImageEncoderConfig


class ConvImageEncoder(nn.Module):
    def __init__(self, config: ConvImageEncoderConfig):
        super().__init__()
        self.embed_dim = config.embed_dim
        layers: list[nn.Module] = []
        previous = 3
        for width in config.channels:
            # GroupNorm rather than BatchNorm: the reference batch is often a single image.
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1),
                       nn.GroupNorm(_groups(width), width), nn.SiLU()]
            previous = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(previous, config.embed_dim)

    def encode(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, embed_dim)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (batch, 3, H, W) in [-1, 1], got shape {tuple(images.shape)}")
        pooled = self.features(images.to(self.head.weight.dtype)).mean(dim=(2, 3))
        return self.head(pooled)


def _groups(width: int) -> int:
    """The largest of 8, 4, 2, 1 that divides ``width`` (GroupNorm needs an exact split)."""
    return next(g for g in (8, 4, 2, 1) if width % g == 0)


def build(config: ConvImageEncoderConfig) -> ConvImageEncoder:
    return ConvImageEncoder(config)
