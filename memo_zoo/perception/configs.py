"""Options of the perception pieces that components expose in recipes: the face square of the face
metrics (``FaceOptions``), SyncNet's reading of a video (``SyncNetOptions``), the face-recognition
image encoder (``FaceEmbeddingConfig``) and the MDX vocal separator (``VocalSeparatorConfig``: the
vocal_separation stage and generation). Pydantic only, no torch, OpenCV or scipy.

The metrics and the image encoder register these through their plugins without importing the
perception code, so ``memo-zoo ls``, ``validate`` and ``schema`` import none of it (issue 17.8).
``face_boxes``, ``syncnet`` and ``face_embedding`` import them from here, so their old import paths
stay.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

# OpenCV's frontal-face Haar cascade file (memo_zoo.perception.faces), the face_crop stage's default.
HAAR_FILE = "haarcascade_frontalface_default.xml"


class FaceOptions(BaseModel):
    """Face-crop options shared by the face metrics (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    face_detector: Literal["none", "lbp", "yunet", "dlib_hog"] = Field(
        "none", description="none: frames are face crops already, take the centre square; lbp: scikit-image's "
                            "LBP cascade (offline); yunet: cv2.FaceDetectorYN with detector_model; dlib_hog: "
                            "dlib's HOG detector (offline, no model file)")
    detector_model: Optional[str] = Field(None, description="yunet: the YuNet ONNX file (a path, or a name under "
                                                            "MEMO_ZOO_WEIGHTS_DIR)")
    crop: float = Field(1.0, gt=0, le=1, description="face_detector none: side of the centre square, as a "
                                                     "fraction of the frame's shorter side")
    sample_every: int = Field(5, ge=1, description="with a detector: detect on every k-th frame")

    @model_validator(mode="after")
    def _check_detector(self):
        if self.face_detector == "yunet" and not self.detector_model:
            raise ValueError("face_detector yunet needs detector_model: the YuNet ONNX file")
        return self


class SyncNetOptions(FaceOptions):
    """How SyncNet reads a video: the face square (``FaceOptions``), the offsets searched, the
    channel order and the batch size."""

    max_offset: int = Field(15, ge=0, le=50, description="shifts searched: -max_offset..max_offset video frames")
    bgr: bool = Field(True, description="feed BGR channel order, as the reference (OpenCV-read frames)")
    batch_size: int = Field(16, ge=1, description="windows per forward pass")


class FaceEmbeddingConfig(BaseModel):
    """Frozen face-recognition network from a serialised graph (released code's image condition)."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field(..., description="face-recognition network as a TorchScript file or a .pt2 torch.export "
                                          "program: a path, or a name under MEMO_ZOO_WEIGHTS_DIR")
    embed_dim: int = Field(512, ge=1, description="width of the network's embedding (§10: 512)")
    input_size: int = Field(112, ge=8, description="side of the square crop the network expects (ArcFace: 112)")
    crop: float = Field(1.0, gt=0, le=1, description="centre square kept, as a fraction of the shorter side")
    bgr: bool = Field(False, description="feed channels as BGR (for networks trained on OpenCV-ordered images)")


RELEASE_VOCAL_SEPARATOR = "misc/vocal_separator/Kim_Vocal_2.onnx"


class VocalSeparatorConfig(BaseModel):
    """MDX-Net vocal separation with ONNX Runtime: STFT, the net on spectrogram chunks, iSTFT."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field(
        ..., description="the MDX-Net ONNX file (Kim_Vocal_2.onnx): a path or a name under MEMO_ZOO_WEIGHTS_DIR, or "
                         "a MEMO release folder / hub id such as memoavatar/memo, read offline from the Hugging Face "
                         f"cache ({RELEASE_VOCAL_SEPARATOR} inside it)")
    n_fft: int = Field(7680, ge=16, description="STFT size (audio-separator's mdx_n_fft_scale_set; Kim_Vocal_2: 7680)")
    hop_length: int = Field(1024, ge=1, description="STFT hop in samples (audio-separator default: 1024)")
    dim_f: Optional[int] = Field(None, ge=1, description="frequency bins the net takes (None: the model's input "
                                                         "shape; Kim_Vocal_2: 3072)")
    dim_t: Optional[int] = Field(None, ge=2, description="STFT frames per chunk, the segment size (None: the model's "
                                                         "input shape; Kim_Vocal_2: 256)")
    compensate: float = Field(1.009, gt=0, description="gain applied to the separated stem (audio-separator's "
                                                       "model table; Kim_Vocal_2: 1.009)")
    overlap: float = Field(0.25, ge=0, lt=1, description="overlap of consecutive chunks, Hann-weighted "
                                                         "(audio-separator default: 0.25)")
    sample_rate: int = Field(44100, ge=8000, description="rate the net runs at (audio-separator: 44100 Hz)")
    normalization_threshold: float = Field(0.9, gt=0, le=1, description="peak the mix and the stem are scaled "
                                                                        "down to when louder (audio-separator: 0.9)")
    amplification_threshold: float = Field(0.6, ge=0, le=1, description="peak the mix and the stem are scaled up "
                                                                       "to when quieter, 0 = never (audio-separator "
                                                                       "0.24.1: 0.6)")
    denoise: bool = Field(False, description="also run the net on the negated spectrogram and average "
                                             "(audio-separator's enable_denoise; off in the release)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where ONNX Runtime runs the net: auto follows MEMO_ZOO_DEVICE; cuda needs onnxruntime-gpu")
    threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads on the CPU (0: its default)")

    @model_validator(mode="after")
    def _fits(self) -> "VocalSeparatorConfig":
        if self.dim_f is not None and self.dim_f > self.n_fft // 2 + 1:
            raise ValueError(f"dim_f {self.dim_f} exceeds the n_fft // 2 + 1 = {self.n_fft // 2 + 1} bins of n_fft "
                             f"{self.n_fft}")
        if self.amplification_threshold > self.normalization_threshold:
            raise ValueError(f"amplification_threshold {self.amplification_threshold} is above "
                             f"normalization_threshold {self.normalization_threshold}")
        if self.dim_t is not None and self.hop_length * (self.dim_t - 1) <= self.n_fft:
            raise ValueError(f"a chunk of hop_length x (dim_t - 1) = {self.hop_length * (self.dim_t - 1)} samples "
                             f"must be longer than n_fft {self.n_fft}: half an FFT is trimmed from each end")
        return self
