"""What the frozen pretrained image encoders share: the frozen-backbone base and the image checks.

Used by the built-in image encoders (clip_vision, timm_backbone, face_embedding) and by the face
embedding network that the identity metric loads (``memo_zoo.perception.face_embedding``), so it
lives in the core's model layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_images(images: Tensor) -> None:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (batch, 3, H, W) in [-1, 1], got shape {tuple(images.shape)}")


def fit_square(images: Tensor, size: int, crop: float = 1.0) -> Tensor:
    """(B, C, H, W) -> (B, C, size, size): centre square of side ``crop`` x the shorter side, resized.

    Bicubic with antialiasing, as PIL does in the reference preprocessors; resizing after the crop
    equals CLIP's resize-shorter-side-then-crop up to interpolation at the border.
    """
    h, w = images.shape[-2:]
    side = max(1, round(min(h, w) * crop))
    top, left = (h - side) // 2, (w - side) // 2
    square = images[..., top:top + side, left:left + side]
    if side == size:
        return square
    return F.interpolate(square, size=(size, size), mode="bicubic", align_corners=False, antialias=True)


class FrozenEncoder(nn.Module):
    """Base of the frozen pretrained image encoders: the backbone stays in eval mode."""

    backbone: nn.Module

    def freeze(self) -> None:
        # Per parameter: ScriptModules refuse Module.requires_grad_.
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)
        self._backbone_eval()

    def _backbone_eval(self) -> None:
        try:
            self.backbone.eval()
        except NotImplementedError:
            pass  # a torch.export program keeps the mode it was exported in and refuses eval()/train()

    def train(self, mode: bool = True) -> "FrozenEncoder":
        # The backbone is left out of the recursion: a frozen network keeps dropout and batch-norm
        # statistics fixed whatever the host's mode.
        self.training = mode
        for child in self.children():
            if child is not self.backbone:
                child.train(mode)
        self._backbone_eval()
        return self

    def backbone_dtype(self) -> torch.dtype:
        return next(self.backbone.parameters()).dtype
