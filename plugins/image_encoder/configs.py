"""Options of the built-in image encoders (spec A4, §10): pydantic only, no torch.

``plugin.py`` registers these without importing the encoders, so ``memo-zoo ls``, ``validate``
and ``schema`` never import torch (issue 17.8). Each encoder module imports its config from here,
so the old import paths (``memo_zoo_plugins.image_encoder.conv.ConvImageEncoderConfig``, ...) stay.
``face_embedding``'s config is the core's (the identity metric shares its network).
"""

from __future__ import annotations

from typing import Literal, Optional

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


RELEASE_FACE_MODELS = "misc/face_analysis/models"
RELEASE_DETECTOR = "scrfd_10g_bnkps.onnx"
RELEASE_RECOGNIZER = "glintr100.onnx"


class InsightFaceConfig(BaseModel):
    """Frozen insightface pipeline (SCRFD detection, 5-point alignment, ArcFace) in ONNX Runtime."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field(
        ..., description="the face analysis models folder: a path or a name under MEMO_ZOO_WEIGHTS_DIR (the folder "
                         "holding the .onnx files, or a folder with models/ or misc/face_analysis/models/ inside), "
                         "or a MEMO release folder / hub id such as memoavatar/memo, read offline from the Hugging "
                         f"Face cache (its {RELEASE_FACE_MODELS}/)")
    detector: str = Field(RELEASE_DETECTOR, min_length=1,
                          description="SCRFD detector file in that folder (the release's: scrfd_10g_bnkps.onnx)")
    recognizer: str = Field(RELEASE_RECOGNIZER, min_length=1,
                            description="ArcFace recogniser file in that folder (the release's: glintr100.onnx, 512-d)")
    det_size: int = Field(640, ge=32, multiple_of=32,
                          description="side of the square the image is letterboxed into for detection (release "
                                      "inference: 640; its data preparation: 512); ignored by a fixed-size model")
    det_thresh: float = Field(0.5, gt=0, lt=1, description="minimum face score (insightface default 0.5)")
    nms_thresh: float = Field(0.4, gt=0, le=1, description="IoU above which a lower-scored box is suppressed "
                                                           "(insightface's SCRFD: 0.4)")
    normalize: bool = Field(False, description="L2-normalise the embedding (insightface's normed_embedding); the "
                                               "release feeds the raw embedding to image_proj (False)")
    recognizer_mean: Optional[float] = Field(
        None, description="pixel mean subtracted before the recogniser; None: insightface's rule (127.5, or 0 for "
                          "a model converted from MXNet that normalises inside)")
    recognizer_std: Optional[float] = Field(
        None, gt=0, description="pixel divisor of the recogniser's input; None: insightface's rule (127.5, or 1)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where ONNX Runtime runs the models: auto follows MEMO_ZOO_DEVICE; cuda needs "
                            "onnxruntime-gpu (CPU otherwise)")
    threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads on the CPU (0: its default)")
