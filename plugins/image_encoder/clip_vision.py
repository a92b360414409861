"""``clip_vision``: frozen CLIP vision tower with projection, as in the paper (spec A4).

``transformers.CLIPVisionModelWithProjection`` loaded from a LOCAL folder (a path or a name under
MEMO_ZOO_WEIGHTS_DIR; e.g. IP-Adapter's ``image_encoder`` folder or a full CLIP checkpoint).
Preprocessing is CLIPImageProcessor's: shorter side resized to the model's image size (224)
with bicubic antialiasing, centre crop, CLIP mean/std. The embedding is ``image_embeds``
(B, projection_dim), unnormalised, which the network's image projector maps to tokens.

``weights`` is required and loaded at build time; the model never trains (``requires_grad=False``,
eval mode, ``no_grad``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memo_zoo.model.frozen_encoder import FrozenEncoder, check_images, fit_square
from memo_zoo.weights import resolve_weights
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.image_encoder.configs import ClipVisionConfig

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipVisionEncoder(FrozenEncoder):
    def __init__(self, config: ClipVisionConfig):
        super().__init__()
        from transformers import CLIPVisionModelWithProjection  # heavy import, only when used

        path = resolve_weights(config.weights, "CLIP vision encoder (CLIPVisionModelWithProjection folder)",
                               expect=("config.json",))
        self.backbone = CLIPVisionModelWithProjection.from_pretrained(str(path), local_files_only=True)
        self.freeze()
        self.embed_dim = self.backbone.config.projection_dim
        self.image_size = config.image_size or self.backbone.config.image_size
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def encode(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, projection_dim) CLIP image embeddings."""
        check_images(images)
        x = fit_square((images.float() + 1) / 2, self.image_size).clamp(0, 1)
        x = (x - self.mean.float()) / self.std.float()
        with torch.no_grad():
            return self.backbone(pixel_values=x.to(self.backbone_dtype())).image_embeds


def build(config: ClipVisionConfig) -> ClipVisionEncoder:
    return ClipVisionEncoder(config)
