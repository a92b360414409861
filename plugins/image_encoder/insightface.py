"""``image_encoder: {kind: insightface}``: the released code's face condition, reproduced (§10, A4).

The release takes its image condition from insightface's ``FaceAnalysis`` over
``misc/face_analysis/models/`` (``memo/utils/vision_utils.py``: ``preprocess_image``): detect the
faces (SCRFD, ``scrfd.py``), keep the one with the largest box, align it by its 5 landmarks onto
the 112x112 ArcFace template (``face_align.py``) and embed the crop with the ArcFace recogniser
(``glintr100.onnx``, ``arcface.py``). The raw 512-d embedding goes to ``image_proj``; with no face
in the portrait the release warns and uses a zero vector, and so does this encoder
(``NoFaceWarning``). insightface itself is not a dependency: it ships only as a source package
that compiles a Cython/C++ extension at install time and pulls albumentations and more, while only
this inference path of it is needed.

``encode`` takes memo-zoo's (B, 3, H, W) images in [-1, 1], turns each back into 8-bit RGB and
runs the pipeline on it. One difference stays: the release detects on the portrait file at its
own resolution, memo-zoo's generation hands the encoder the portrait already fitted to the frame
size (``memo_zoo.generate.inputs.load_portrait``), so the aligned crop is resampled from that.

The models run in ONNX Runtime, frozen; the module has no parameters, so nothing of it is trained
or saved in a checkpoint.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from memo_zoo.errors import MissingWeightsError
from memo_zoo.model.frozen_encoder import check_images
from memo_zoo.perception.onnx_models import locate
from memo_zoo_plugins.image_encoder.arcface import ArcFaceRecognizer
from memo_zoo_plugins.image_encoder.configs import RELEASE_FACE_MODELS, InsightFaceConfig  # noqa: F401  (re-exported)
from memo_zoo_plugins.image_encoder.scrfd import ScrfdDetector

__all__ = ["InsightFaceConfig", "InsightFaceEncoder", "NoFaceWarning", "build", "face_models_folder"]

WHAT = "insightface face analysis models"


class NoFaceWarning(UserWarning):
    """The portrait has no face the detector accepts: its embedding is the zero vector (as released)."""


def face_models_folder(reference: str) -> Path:
    """The folder holding the .onnx files: ``reference`` itself, its ``models/`` (insightface's
    ``FaceAnalysis`` root) or its ``misc/face_analysis/models/`` (a release folder or hub id)."""
    folder = locate(reference, WHAT, RELEASE_FACE_MODELS)
    if not folder.is_dir():
        raise MissingWeightsError(f"{WHAT}: {folder} is a file; give the folder that holds the .onnx files")
    if not any(folder.glob("*.onnx")) and any((folder / "models").glob("*.onnx")):
        folder = folder / "models"
    return folder


def _model_file(folder: Path, name: str, option: str) -> Path:
    path = folder / name
    if not path.is_file():
        present = sorted(p.name for p in folder.glob("*.onnx"))
        raise MissingWeightsError(
            f"{WHAT}: no {name} in {folder} (image_encoder.{option}); the .onnx files there: "
            f"{', '.join(present) or 'none'}. The release ships it in {RELEASE_FACE_MODELS}/ of memoavatar/memo")
    return path


def to_uint8_rgb(image: Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8, the 8-bit picture the release's pipeline reads."""
    pixels = ((image.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())


class InsightFaceEncoder(nn.Module):
    """Largest face's ArcFace embedding (module docstring); ``embed_dim`` is the recogniser's width."""

    def __init__(self, config: InsightFaceConfig):
        super().__init__()
        self.config = config
        folder = face_models_folder(config.weights)
        self.detector = ScrfdDetector(_model_file(folder, config.detector, "detector"), det_size=config.det_size,
                                      det_thresh=config.det_thresh, nms_thresh=config.nms_thresh,
                                      device=config.device, threads=config.threads)
        if not self.detector.with_landmarks:
            raise MissingWeightsError(f"{WHAT}: the detector {self.detector.path} gives no landmarks, which the "
                                      "ArcFace alignment needs; use an SCRFD '_kps' model (scrfd_10g_bnkps.onnx)")
        self.recognizer = ArcFaceRecognizer(_model_file(folder, config.recognizer, "recognizer"),
                                            mean=config.recognizer_mean, std=config.recognizer_std,
                                            device=config.device, threads=config.threads)
        self.embed_dim = self.recognizer.embed_dim

    def embed_image(self, image: np.ndarray) -> np.ndarray | None:
        """The embedding of the largest face of an (H, W, 3) uint8 RGB image; None without a face."""
        faces = self.detector.detect(image)
        if not len(faces):
            return None
        return self.recognizer.embed_face(image, faces.landmarks[faces.largest()])

    def encode(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, embed_dim) float32 embeddings, zero for a faceless image."""
        check_images(images)
        rows = []
        for index, image in enumerate(images):
            embedding = self.embed_image(to_uint8_rgb(image))
            if embedding is None:
                warnings.warn(f"insightface image encoder: no face found in image {index} of the batch (score >= "
                              f"det_thresh {self.config.det_thresh}); its face embedding is a zero vector, as the "
                              "released code does", NoFaceWarning, stacklevel=2)
                embedding = np.zeros(self.embed_dim, dtype=np.float32)
            elif self.config.normalize:
                embedding = embedding / max(float(np.linalg.norm(embedding)), 1e-12)
            rows.append(torch.from_numpy(np.asarray(embedding, dtype=np.float32)))
        return torch.stack(rows).to(images.device)


def build(config: InsightFaceConfig) -> InsightFaceEncoder:
    return InsightFaceEncoder(config)
