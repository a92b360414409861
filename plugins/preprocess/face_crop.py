"""``preprocess: {kind: face_crop}``: keep clips with exactly one whole face and crop around it.

Spec §7: "face detection, drop no-face / partial / multi-head, crop the box scaled by 1.1". A face
detector runs on every ``sample_every``-th frame. The clip is dropped when too few samples show a
face, when too many show more than one, or when the face box touches the frame border (a face cut
by the border). Otherwise the square crop is centred on the median face box over the samples,
``scale`` times its larger side, and fixed for the whole clip: a per-frame crop would shake with
the detector's jitter, which the model would learn as head motion.

Detectors (``detector``):
- ``lbp``: OpenCV's LBP frontal-face cascade as shipped by scikit-image, run by
  ``skimage.feature.Cascade``. The default, because it works offline from a pip package.
- ``haar``: OpenCV's Haar frontal-face cascade (``haarcascade_frontalface_default.xml``) with
  ``cv2.CascadeClassifier``. OpenCV 5 moved both the class and the cascade files to opencv-contrib,
  so it needs an OpenCV that has the class (4.x, or opencv-contrib 5.x) and the XML file, by default
  looked for in ``cv2.data.haarcascades``.
- ``yunet``: ``cv2.FaceDetectorYN`` with the YuNet ONNX model from a local file (``model``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal, Optional, Protocol

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.pipeline import StageResult, load_clip, write_clip
from memo_zoo.errors import MemoZooError
from memo_zoo.weights import resolve_weights

HAAR_FILE = "haarcascade_frontalface_default.xml"


class FaceCropConfig(BaseModel):
    """Drop clips with no / several / partial faces; crop a fixed square around the face."""

    model_config = ConfigDict(extra="forbid")

    detector: Literal["lbp", "haar", "yunet"] = Field(
        "lbp", description="face detector: lbp (OpenCV LBP cascade shipped by scikit-image), haar (OpenCV "
                           "Haar cascade; needs cv2.CascadeClassifier: OpenCV 4.x or opencv-contrib 5.x), "
                           "yunet (cv2.FaceDetectorYN with a local ONNX model)")
    cascade: Optional[str] = Field(
        None, description="cascade XML for lbp / haar; default: scikit-image's LBP frontal-face cascade (lbp), "
                          f"cv2.data.haarcascades + '{HAAR_FILE}' (haar)")
    model: Optional[str] = Field(
        None, description="YuNet ONNX model (e.g. face_detection_yunet_2023mar.onnx): a path, or a name "
                          "under MEMO_ZOO_WEIGHTS_DIR; required for detector yunet")
    min_neighbors: int = Field(4, ge=0, description="cascade detectors: overlapping detections needed to "
                                                    "accept a face (higher = fewer false faces)")
    score_threshold: float = Field(0.7, gt=0, lt=1, description="yunet: lowest face score accepted")
    sample_every: int = Field(5, ge=1, description="run the detector on every k-th frame")
    detect_size: int = Field(320, ge=48, description="frames are shrunk so that their longer side is at "
                                                     "most this many pixels before detection (speed)")
    min_face_size: float = Field(0.1, gt=0, le=1, description="faces smaller than this fraction of the "
                                                              "frame's shorter side are ignored")
    min_face_fraction: float = Field(0.5, ge=0, le=1, description="drop as 'no face' when fewer than this "
                                                                  "fraction of sampled frames show a face")
    max_multi_fraction: float = Field(0.2, ge=0, le=1, description="drop as multi-face when more than this "
                                                                   "fraction of sampled frames show 2+ faces")
    border_margin: float = Field(0.03, ge=0, lt=0.5, description="drop as partial face when the median face "
                                                                "box comes within this fraction of the "
                                                                "frame size of its border (0 = touches it)")
    scale: float = Field(1.1, ge=1.0, description="crop side = scale x the face box's larger side (spec §7)")
    size: Optional[int] = Field(512, ge=16, description="output side in pixels (even); null keeps the crop's "
                                                        "own size")

    @model_validator(mode="after")
    def _check(self) -> "FaceCropConfig":
        if self.size is not None and self.size % 2:
            raise ValueError(f"size must be even (H.264 4:2:0), got {self.size}")
        if self.detector == "yunet" and not self.model:
            raise ValueError("detector yunet needs model: the path of the YuNet ONNX file")
        return self


class FaceDetector(Protocol):
    """RGB frame (H, W, 3) uint8 -> face boxes (N, 4) as x, y, width, height in pixels."""

    def __call__(self, frame: np.ndarray) -> np.ndarray: ...


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


class LbpDetector:
    def __init__(self, cascade: str | None, min_neighbors: int):
        try:
            from skimage import data
            from skimage.feature import Cascade
        except ImportError:
            raise MemoZooError("face_crop detector lbp needs scikit-image (pip install scikit-image), "
                               "or choose detector haar / yunet") from None
        path = resolve_weights(cascade, "LBP face cascade (OpenCV XML)") if cascade \
            else Path(data.lbp_frontal_face_cascade_filename())
        self.cascade = Cascade(str(path))
        self.min_neighbors = min_neighbors

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        gray = _gray(frame)
        height, width = gray.shape
        found = self.cascade.detect_multi_scale(gray, scale_factor=1.1, step_ratio=1, min_size=(24, 24),
                                                max_size=(height, width),
                                                min_neighbor_number=self.min_neighbors)
        return np.array([[f["c"], f["r"], f["width"], f["height"]] for f in found], dtype=np.float64).reshape(-1, 4)


def _cascade_classifier_class():
    cls = getattr(cv2, "CascadeClassifier", None)
    if cls is None:
        cls = getattr(getattr(cv2, "xobjdetect", None), "CascadeClassifier", None)
    return cls


class HaarDetector:
    def __init__(self, cascade: str | None, min_neighbors: int):
        classifier = _cascade_classifier_class()
        if classifier is None:
            raise MemoZooError(
                f"face_crop detector haar: OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 moved "
                "Haar cascades to opencv-contrib); install opencv-contrib-python-headless, or use detector: lbp "
                "(scikit-image) or detector: yunet")
        if cascade is None:
            default = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / HAAR_FILE
            if not default.is_file():
                raise MemoZooError(f"face_crop detector haar: the Haar cascade {default} is missing (this OpenCV "
                                   f"build ships no cascade files); set cascade: to your copy of {HAAR_FILE}")
            path = default
        else:
            path = resolve_weights(cascade, f"Haar face cascade ({HAAR_FILE})")
        self.classifier = classifier(str(path))
        if self.classifier.empty():
            raise MemoZooError(f"face_crop detector haar: {path} cannot be read as an OpenCV cascade")
        self.min_neighbors = min_neighbors

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        found = self.classifier.detectMultiScale(_gray(frame), scaleFactor=1.1, minNeighbors=self.min_neighbors,
                                                 minSize=(24, 24))
        return np.asarray(found, dtype=np.float64).reshape(-1, 4)


class YuNetDetector:
    def __init__(self, model: str, score_threshold: float):
        path = resolve_weights(model, "YuNet face detector (ONNX model for cv2.FaceDetectorYN)")
        try:
            self.detector = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, 0.3, 50)
        except cv2.error as error:
            raise MemoZooError(f"face_crop detector yunet: {path} cannot be loaded as a YuNet model ({error})") \
                from None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        self.detector.setInputSize((width, height))
        _, faces = self.detector.detect(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
        return np.zeros((0, 4)) if faces is None else np.asarray(faces[:, :4], dtype=np.float64)


def build_detector(config: FaceCropConfig) -> FaceDetector:
    if config.detector == "haar":
        return HaarDetector(config.cascade, config.min_neighbors)
    if config.detector == "yunet":
        return YuNetDetector(config.model, config.score_threshold)
    return LbpDetector(config.cascade, config.min_neighbors)


def square_crop(box: np.ndarray, scale: float, height: int, width: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the square centred on ``box`` (x, y, w, h), ``scale`` x its larger side.

    The square is shifted to lie inside the frame, and shrunk to the frame's shorter side when it
    would not fit (the face then fills more of the crop than ``scale`` asks). The side is even.
    """
    x, y, w, h = box
    side = min(int(round(scale * max(w, h))), height, width)
    side -= side % 2
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return x0, y0, side


class FaceCrop:
    name = "face_crop"

    def __init__(self, config: FaceCropConfig, detector: FaceDetector | None = None):
        self.config = config
        self.detector = detector if detector is not None else build_detector(config)

    def faces(self, frame: np.ndarray) -> np.ndarray:
        """Face boxes in ``frame``'s own pixels, small ones (``min_face_size``) left out."""
        height, width = frame.shape[:2]
        factor = min(1.0, self.config.detect_size / max(height, width))
        small = frame if factor == 1.0 else cv2.resize(frame, (max(1, round(width * factor)),
                                                               max(1, round(height * factor))),
                                                       interpolation=cv2.INTER_AREA)
        boxes = self.detector(small) / factor
        smallest = self.config.min_face_size * min(height, width)
        return boxes[np.maximum(boxes[:, 2], boxes[:, 3]) >= smallest] if len(boxes) else boxes

    def process(self, clip: ClipRecord, out_dir: Path) -> StageResult:
        config = self.config
        frames, fps, audio = load_clip(clip)
        height, width = frames.shape[1:3]
        found = [self.faces(frames[i]) for i in range(0, len(frames), config.sample_every)]
        counts = [len(b) for b in found]
        samples = len(counts)
        multi = [c for c in counts if c > 1]
        if len(multi) / samples > config.max_multi_fraction:
            most = Counter(multi).most_common(1)[0][0]
            return StageResult.drop(f"{most} faces in {len(multi)}/{samples} sampled frames", most)
        single = [b[0] for b in found if len(b) == 1]
        with_face = sum(1 for c in counts if c >= 1)
        if with_face / samples < config.min_face_fraction or not single:
            return StageResult.drop(f"no face in {samples - with_face}/{samples} sampled frames",
                                    with_face / samples)
        # The median box over the samples: robust to a few misplaced detections.
        x0, y0, x1, y1 = np.median([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in single], axis=0)
        mx, my = config.border_margin * width, config.border_margin * height
        if x0 <= mx or y0 <= my or x1 >= width - mx or y1 >= height - my:
            return StageResult.drop(
                f"partial face: box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f}) touches the {width}x{height} "
                "frame border", with_face / samples)
        left, top, side = square_crop(np.array([x0, y0, x1 - x0, y1 - y0]), config.scale, height, width)
        crops = frames[:, top:top + side, left:left + side]
        if config.size is not None and config.size != side:
            interpolation = cv2.INTER_AREA if config.size < side else cv2.INTER_CUBIC
            crops = np.stack([cv2.resize(f, (config.size, config.size), interpolation=interpolation) for f in crops])
        output = write_clip(clip, out_dir, np.ascontiguousarray(crops), fps, audio)
        return StageResult.keep(output, reason=f"face {x1 - x0:.0f}x{y1 - y0:.0f} px, crop {side} px at "
                                               f"({left}, {top})", value=with_face / samples)


def build(config: FaceCropConfig) -> FaceCrop:
    return FaceCrop(config)
