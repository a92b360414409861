"""Options of the perception pieces that components expose in recipes: the face square of the face
metrics (``FaceOptions``), SyncNet's reading of a video (``SyncNetOptions``) and the face-recognition
image encoder (``FaceEmbeddingConfig``). Pydantic only, no torch, OpenCV or scipy.

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
