"""Options of the standard metric suite (spec §8): pydantic only, no torch, numpy or scipy.

``memo_zoo_eval.plugin`` registers these without importing the metrics, so ``memo-zoo ls``,
``validate`` and ``schema`` import none of their libraries (issue 17.8). Each metric module imports
its config from here, so the old import paths (``memo_zoo_eval.metrics.fid.FidConfig``, ...) stay.
The face options the face metrics share are the core's (``memo_zoo.perception.configs``).
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memo_zoo.perception.configs import FaceOptions, SyncNetOptions
from memo_zoo.perception.configs import DlibFaceEmbeddingConfig


class FidConfig(BaseModel):
    """Frechet Inception Distance of generated frames vs ground-truth frames (spec §8)."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field("pt_inception-2015-12-05-6726825d.pth",
                         description="Inception-v3 file: the FID state dict (pytorch-fid / torch-fidelity), a "
                                     "torchvision inception_v3 state dict, or a TorchScript network; a path, or a "
                                     "name under MEMO_ZOO_WEIGHTS_DIR")
    reference_stats: Optional[str] = Field(None, description="precomputed reference statistics (.npz with mu, "
                                                             "sigma); default: features of the ground-truth "
                                                             "videos passed with the generated ones")
    resize: Literal["tensorflow", "antialias"] = Field(
        "tensorflow", description="FID state dict: resize to 299 as TensorFlow 1 did (original FID code) or "
                                  "bilinear with antialiasing (torchmetrics' default)")
    frame_stride: int = Field(1, ge=1, description="use every k-th frame of each video")
    batch_size: int = Field(32, ge=1, description="frames per forward pass")
    device: str = Field("auto", description="auto (MEMO_ZOO_DEVICE: CUDA when available), cpu, cuda, cuda:N")
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="compute dtype of the network (state-dict formats); half precision for GPUs")
    per_video_distance: bool = Field(False, description="also give each video's own FID (noisy: a 2048-d "
                                                        "covariance from one video's frames)")


class FvdConfig(BaseModel):
    """Frechet Video Distance of I3D features of 16-frame clips (spec §8)."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field("i3d_torchscript.pt", description="TorchScript I3D (i3d_torchscript.pt): a path, or a "
                                                           "name under MEMO_ZOO_WEIGHTS_DIR")
    reference_stats: Optional[str] = Field(None, description="precomputed reference statistics (.npz with mu, "
                                                             "sigma); default: clips of the ground-truth videos")
    clip_length: int = Field(16, ge=1, description="frames per clip (FVD: 16)")
    clip_stride: int = Field(16, ge=1, description="frames between the starts of consecutive clips")
    frame_step: int = Field(1, ge=1, description="take every k-th frame inside a clip (temporal subsampling)")
    max_clips_per_video: Optional[int] = Field(None, ge=1, description="at most this many clips per video, spread "
                                                                       "evenly over it; null: all")
    resize_in_network: bool = Field(True, description="true: [0, 255] frames, the network rescales and resizes "
                                                      "(StyleGAN-V's call); false: memo-zoo resizes to size and "
                                                      "scales to [-1, 1]")
    size: int = Field(224, ge=32, description="resize_in_network false: frame side fed to the network")
    batch_size: int = Field(4, ge=1, description="clips per forward pass")
    device: str = Field("auto", description="auto (MEMO_ZOO_DEVICE: CUDA when available), cpu, cuda, cuda:N")
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="dtype of the network input "
                                                                                    "and weights (GPU)")
    per_video_distance: bool = Field(False, description="also give each video's own FVD (noisy with few clips)")


class SyncConfig(SyncNetOptions):
    """Sync-C / Sync-D with SyncNet from local weights (spec §8). The face crop and its options
    (``crop_mode``: tracked per frame as the reference pipeline, or one fixed square) are
    ``SyncNetOptions``'."""

    weights: str = Field("syncnet_v2.model", description="SyncNet state dict (syncnet_v2.model): a path, or a name "
                                                          "under MEMO_ZOO_WEIGHTS_DIR")
    device: str = Field("auto", description="auto (MEMO_ZOO_DEVICE: CUDA when available), cpu, cuda, cuda:N")


class IdentityConfig(FaceOptions):
    """Cosine similarity of face embeddings, reference image vs generated frames (spec §8): ArcFace
    from ``weights`` (the paper's), else dlib's 128-d embedding from the face-recognition-models package."""

    weights: Optional[str] = Field(None, description="face-recognition network (ArcFace-style, the paper's) as a "
                                                     "TorchScript file or .pt2 program: a path, or a name under "
                                                     "MEMO_ZOO_WEIGHTS_DIR; null: dlib's 128-d embedding (offline, "
                                                     "pip face-recognition-models), figures on another scale")
    embed_dim: int = Field(512, ge=1, description="ArcFace: width of the network's embedding")
    input_size: int = Field(112, ge=8, description="ArcFace: side of the square crop the network expects (112)")
    bgr: bool = Field(False, description="ArcFace: feed BGR channel order (networks trained on OpenCV-read images)")
    align: bool = Field(False, description="ArcFace: align each face onto ArcFace's 5-point template with dlib's "
                                           "68-point landmarks inside the face square (dlib's embedding always "
                                           "aligns: its chip is part of its recipe)")
    dlib: DlibFaceEmbeddingConfig = Field(default_factory=DlibFaceEmbeddingConfig,
                                          description="weights null: dlib's embedding and its model files")
    box_scale: float = Field(1.0, gt=0, description="with a face detector: crop side = this x the box's larger side")
    frame_stride: int = Field(1, ge=1, description="use every k-th frame")
    drift_fraction: float = Field(0.1, gt=0, le=0.5, description="identity_first / identity_last: this fraction "
                                                                 "of the frames at each end")
    time_bins: int = Field(10, ge=0, le=100, description="identity_bin0..: mean per equal stretch of the video "
                                                         "(0: none)")
    batch_size: int = Field(64, ge=1, description="frames per forward pass")
    device: str = Field("auto", description="auto (MEMO_ZOO_DEVICE: CUDA when available), cpu, cuda, cuda:N")


class EFidConfig(FaceOptions):
    """Frechet distance of per-frame expression coefficients, generated vs ground truth (spec §8)."""

    extractor: str = Field(..., description="expression network as a TorchScript / .pt2 file (a path, or a name "
                                            "under MEMO_ZOO_WEIGHTS_DIR), or package.module:factory returning an "
                                            "ExpressionExtractor")
    coefficients: Optional[tuple[int, int]] = Field(None, description="[start, stop): the slice of each output "
                                                                      "vector kept (e.g. [80, 144]); null: all")
    input_size: int = Field(224, ge=8, description="TorchScript extractor: side of the square face crop it takes")
    align: bool = Field(False, description="align each face onto ArcFace's 5-point template (scaled to the crop) "
                                           "with dlib's 68-point landmarks before the extractor, removing head "
                                           "roll and scale; off: the plain face square")
    input_range: Literal["0_1", "-1_1", "0_255"] = Field("0_1", description="TorchScript extractor: pixel scaling "
                                                                            "of its input")
    bgr: bool = Field(False, description="TorchScript extractor: feed BGR channel order")
    output_index: int = Field(0, ge=0, description="TorchScript extractor returning a tuple: the item holding "
                                                   "the coefficients")
    reference_stats: Optional[str] = Field(None, description="precomputed reference statistics (.npz with mu, "
                                                             "sigma); default: the ground-truth videos' frames")
    frame_stride: int = Field(1, ge=1, description="use every k-th frame")
    batch_size: int = Field(32, ge=1, description="TorchScript extractor: frames per forward pass")
    device: str = Field("auto", description="auto (MEMO_ZOO_DEVICE: CUDA when available), cpu, cuda, cuda:N")
    per_video_distance: bool = Field(False, description="also give each video's own E-FID")

    @field_validator("coefficients")
    @classmethod
    def _check_slice(cls, value):
        if value is not None and not 0 <= value[0] < value[1]:
            raise ValueError(f"coefficients must be [start, stop) with 0 <= start < stop, got {list(value)}")
        return value


Corner = Literal["top_left", "top_right", "bottom_left", "bottom_right"]


class BackgroundConfig(BaseModel):
    """Corner colour of each frame against the portrait's (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    corners: list[Corner] = Field(
        default_factory=lambda: ["top_left", "top_right"], min_length=1,
        description="corner squares that show background in the dataset's crops (the top two, above the head, "
                    "for face-centred crops)")
    corner: float = Field(0.15, gt=0, le=0.5, description="side of each corner square, as a fraction of the "
                                                          "frame's height and width")
    window_seconds: float = Field(1.0, gt=0, description="background_error_first / _last: this many seconds at "
                                                         "each end")
    window_fraction: float = Field(0.25, gt=0, le=0.5, description="each window's share of the frames when the "
                                                                   "video is shorter than two windows")
