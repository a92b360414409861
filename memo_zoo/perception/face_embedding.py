"""A frozen face-recognition network's 512-d embedding (spec §10): the ``face_embedding`` image
encoder (its plugin, memo_zoo_plugins.image_encoder.face_embedding, registers this class) and the
``identity`` metric's network are this one module, so it lives in the core.

The released code conditions on a face-recognition embedding (ArcFace-style, 512-d) instead of
CLIP. memo-zoo loads such a network as a self-contained serialised graph, so no model code has to
ship with memo-zoo and nothing is downloaded: a TorchScript file (``torch.jit.save(
torch.jit.script(net))`` of e.g. an insightface iresnet100; deprecated by torch but still read)
or a ``.pt2`` torch.export program (``torch.export.save``; export it in eval mode with a dynamic
batch dimension, since an exported program keeps its mode and its declared shapes).

Input contract of the scripted network (the insightface convention): (B, 3, 112, 112) RGB,
normalised to [-1, 1] ((pixel - 127.5) / 127.5), an ALIGNED face crop. memo-zoo's frames are
already in [-1, 1]; ``encode`` takes the centre square (``crop`` x the shorter side: the data
pipeline's face boxes are scaled by 1.1, spec §7, so ~0.9 recovers the tight box), resizes it to
``input_size``, optionally flips RGB -> BGR for networks trained on BGR, and L2-normalises the
output. No landmark alignment is done here: the reference crops are expected to be aligned or
near-frontal (the ``identity`` metric aligns frames first with ``align``,
``memo_zoo.perception.landmarks.align_face``).

``DlibFaceEmbedder`` is the offline alternative with real pretrained weights from a pip package
(face-recognition-models, ``memo_zoo.perception.dlib_models``): dlib's standard recipe, the
5-point shape predictor inside a face box, ``dlib.get_face_chip`` (150 px aligned chip, padding
0.25) and the ResNet-29 face-recognition network, a 128-d embedding (99.38% on LFW by dlib's
report; same person when the Euclidean distance of the raw descriptors is below 0.6). It returns
the descriptors L2-normalised, so cosine similarities compare like ArcFace's; ArcFace's figures and
dlib's are not on the same scale (dlib's cosines of different people sit around 0.8-0.9, ArcFace's
near 0), so a run says which it used.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.weights import resolve_weights
from memo_zoo.model.frozen_encoder import FrozenEncoder, check_images, fit_square
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.perception.configs import DlibFaceEmbeddingConfig, FaceEmbeddingConfig
from memo_zoo.perception import dlib_models
from memo_zoo.perception.landmarks import LandmarkPredictor, face_chip


class FaceEmbeddingEncoder(FrozenEncoder):
    def __init__(self, config: FaceEmbeddingConfig):
        super().__init__()
        self.config = config
        self.embed_dim = config.embed_dim
        path = resolve_weights(config.weights, "face-recognition network (TorchScript or .pt2 file)")
        if path.is_dir():
            raise MissingWeightsError(f"face-recognition network: {path} is a folder; give the network's file")
        try:
            if path.suffix == ".pt2":
                self.backbone = torch.export.load(str(path)).module()
            else:
                self.backbone = torch.jit.load(str(path), map_location="cpu")
        except Exception as error:  # noqa: BLE001 - a corrupt file fails in format-specific ways (zip, pickle, graph)
            raise MemoZooError(f"face-recognition network: {path} is not a TorchScript file (torch.jit.save) "
                               f"nor, with suffix .pt2, a torch.export program: {error}") from None
        self.freeze()

    def encode(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, embed_dim), unit L2 norm."""
        check_images(images)
        x = fit_square(images.float(), self.config.input_size, self.config.crop).clamp(-1, 1)
        if self.config.bgr:
            x = x.flip(1)
        with torch.no_grad():
            out = self.backbone(x.to(self.backbone_dtype()))
        if isinstance(out, (tuple, list)):  # some exports return (embedding, norm)
            out = out[0]
        if out.dim() != 2 or out.shape[1] != self.embed_dim:
            raise MemoZooError(f"face-recognition network returned shape {tuple(out.shape)}, expected "
                               f"(batch, {self.embed_dim}); set embed_dim to the network's width")
        return F.normalize(out.float(), dim=1).to(out.dtype)


class DlibFaceEmbedder:
    """dlib's 128-d face embedding (module docstring): ``embedder(frames, box)``, frames RGB uint8
    (T, H, W, 3) and one face box (x, y, w, h) for all of them -> (T, 128) float64, unit L2 norm.
    The 5-point landmarks are found in every frame inside the box, so the chip follows the face."""

    kind = "dlib_resnet_128"
    embed_dim = 128

    def __init__(self, config: DlibFaceEmbeddingConfig | None = None):
        self.config = config or DlibFaceEmbeddingConfig()
        self.landmarks = LandmarkPredictor(5, self.config.landmark_model)
        self.network = dlib_models.recognition_model(self.config.recognition_model)

    def chips(self, frames: np.ndarray, box: Sequence[float]) -> list[np.ndarray]:
        """The aligned 150 px chips of the face in ``box`` of each frame."""
        return [face_chip(self.landmarks, frame, box, 150, self.config.chip_padding) for frame in frames]

    def __call__(self, frames: np.ndarray, box: Sequence[float]) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise MemoZooError(f"dlib face embedding: frames must be uint8 (T, H, W, 3) RGB, got {frames.dtype} "
                               f"{frames.shape}")
        if not len(frames):
            return np.zeros((0, self.embed_dim))
        descriptors = self.network.compute_face_descriptor(self.chips(frames, box), self.config.jitter)
        out = np.asarray([np.asarray(d) for d in descriptors], dtype=np.float64)
        return out / np.linalg.norm(out, axis=1, keepdims=True)
