"""Options of the built-in image encoders (spec A4, §10): pydantic only, no torch.

``plugin.py`` registers these without importing the encoders, so ``memo-zoo ls``, ``validate``
and ``schema`` never import torch (issue 17.8). Each encoder module imports its config from here,
so the old import paths (``memo_zoo_plugins.image_encoder.conv.ConvImageEncoderConfig``, ...) stay.
``face_embedding``'s config is the core's (the identity metric shares its network).
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from memo_zoo.perception.configs import FaceEmbeddingConfig

__all__ = ["ClipVisionConfig", "ConvImageEncoderConfig", "FaceEmbeddingConfig", "TimmEncoderConfig"]


class ConvImageEncoderConfig(BaseModel):
    """Small trainable CNN image encoder (CPU default)."""

    model_config = ConfigDict(extra="forbid")

    embed_dim: int = Field(32, ge=1, description="embedding width (must equal the network's image_embed_dim; tiny: 32)")
    channels: tuple[int, ...] = Field((16, 32, 64), min_length=1,
                                      description="channels of each stride-2 conv stage")


class ClipVisionConfig(BaseModel):
    """Frozen CLIP vision encoder (paper's image condition, A4)."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field(..., description="CLIPVisionModelWithProjection folder (config.json + weights): a path, "
                                          "or a name under MEMO_ZOO_WEIGHTS_DIR")
    image_size: Optional[int] = Field(None, ge=8, description="input side in pixels (None: the model's, 224)")


class TimmEncoderConfig(BaseModel):
    """Frozen timm backbone with local weights; pooled features."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="timm model name, e.g. 'resnet50' or 'vit_base_patch16_224' "
                                        "(created without downloading anything)")
    weights: str = Field(..., description="state-dict file (.safetensors, .pth, .pt, .bin): a path, or a name under "
                                          "MEMO_ZOO_WEIGHTS_DIR")
    image_size: Optional[int] = Field(None, ge=8, description="input side in pixels (None: the model's default)")
