"""Finding faces in frames: the detectors and box helpers shared by preprocessing (the
``face_crop`` stage), the face metrics (``memo_zoo.perception.face_boxes``) and generation's portrait check.

They live in the core because all three use them and the layers below the built-ins and the
metrics may import only the core (docs/architecture.md).

Detectors (``build_detector(kind, ...)``), each RGB frame (H, W, 3) uint8 -> boxes (N, 4) as
x, y, width, height in pixels:
- ``lbp``: OpenCV's LBP frontal-face cascade as shipped by scikit-image, run by
  ``skimage.feature.Cascade``. The default, because it works offline from a pip package.
- ``haar``: OpenCV's Haar frontal-face cascade (``haarcascade_frontalface_default.xml``) with
  ``cv2.CascadeClassifier``. OpenCV 5 moved both the class and the cascade files to opencv-contrib,
  so it needs an OpenCV that has the class (4.x, or opencv-contrib 5.x) and the XML file, by default
  looked for in ``cv2.data.haarcascades``.
- ``yunet``: ``cv2.FaceDetectorYN`` with the YuNet ONNX model from a local file (``model``).
- ``dlib_hog``: dlib's HOG frontal-face detector, built into the ``dlib-bin`` wheel (no model
  file); frames are enlarged to 256 px first. It finds talking_world's cartoon faces where the
  cascades miss many, so generation's portrait check uses it (``portrait_detector``). Frontal
  faces of about 80 px and up; misses strong profiles and gives the odd false face on textured
  patches (one on the astronaut photo's suit badge at 512 px). Finds faces of ~40 px and up (its
  upsample 1). About 40 frames/s at 256 px, 10 at 512 px on a shared CPU core.
- ``dlib_cnn``: dlib's MMOD CNN face detector (``mmod_human_face_detector.dat`` from the
  ``face-recognition-models`` pip package, ``dlib_models``; ``model`` gives another copy). The most
  accurate of these offline (it finds turned heads, e.g. scikit-image's cameraman that the HOG
  misses, and no false face on the scikit-image photos), but slow on a CPU (about 0.7 frames/s
  at 512 px, 2-3 at 320 px), so frames are shrunk to ``max_side`` on their longer side (and
  enlarged to ``min_side`` on their shorter side) and the boxes scaled back. It finds faces of
  ~80 px and up in that resized frame: right for face crops and portraits, too coarse for wide
  shots unless ``max_side`` or ``upsample`` (dlib doubles the image that many times, 4x the cost
  each) is raised. Its boxes are a little tighter and higher than the HOG's.
- ``best``: the best available offline: ``dlib_cnn`` when dlib and the model file are installed,
  else ``dlib_hog`` when dlib is, else ``lbp`` (no dependency beyond scikit-image). The built
  detector's ``kind`` says which it is. Meant for face crops and portraits (the metrics' videos):
  for small faces in wide shots choose ``dlib_hog``, which is also 10x faster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from memo_zoo.errors import MemoZooError
from memo_zoo.weights import resolve_weights
from memo_zoo.perception import dlib_models
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.perception.configs import HAAR_FILE


class FaceDetector(Protocol):
    """RGB frame (H, W, 3) uint8 -> face boxes (N, 4) as x, y, width, height in pixels."""

    def __call__(self, frame: np.ndarray) -> np.ndarray: ...


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


class LbpDetector:
    kind = "lbp"

    def __init__(self, cascade: str | None, min_neighbors: int):
        try:
            from skimage import data
            from skimage.feature import Cascade
        except ImportError:
            raise MemoZooError("face detector lbp needs scikit-image (pip install scikit-image), "
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
    kind = "haar"

    def __init__(self, cascade: str | None, min_neighbors: int):
        classifier = _cascade_classifier_class()
        if classifier is None:
            raise MemoZooError(
                f"face detector haar: OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 moved "
                "Haar cascades to opencv-contrib); install opencv-contrib-python-headless, or use detector: lbp "
                "(scikit-image) or detector: yunet")
        if cascade is None:
            default = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / HAAR_FILE
            if not default.is_file():
                raise MemoZooError(f"face detector haar: the Haar cascade {default} is missing (this OpenCV "
                                   f"build ships no cascade files); set cascade: to your copy of {HAAR_FILE}")
            path = default
        else:
            path = resolve_weights(cascade, f"Haar face cascade ({HAAR_FILE})")
        self.classifier = classifier(str(path))
        if self.classifier.empty():
            raise MemoZooError(f"face detector haar: {path} cannot be read as an OpenCV cascade")
        self.min_neighbors = min_neighbors

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        found = self.classifier.detectMultiScale(_gray(frame), scaleFactor=1.1, minNeighbors=self.min_neighbors,
                                                 minSize=(24, 24))
        return np.asarray(found, dtype=np.float64).reshape(-1, 4)


class YuNetDetector:
    kind = "yunet"

    def __init__(self, model: str, score_threshold: float):
        path = resolve_weights(model, "YuNet face detector (ONNX model for cv2.FaceDetectorYN)")
        try:
            self.detector = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, 0.3, 50)
        except cv2.error as error:
            raise MemoZooError(f"face detector yunet: {path} cannot be loaded as a YuNet model ({error})") \
                from None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        self.detector.setInputSize((width, height))
        _, faces = self.detector.detect(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
        return np.zeros((0, 4)) if faces is None else np.asarray(faces[:, :4], dtype=np.float64)


class DlibHogDetector:
    """dlib's HOG + linear SVM frontal-face detector (built into dlib, no model file).

    It looks for faces of about 80 px and up, so a frame is first enlarged to ``min_side`` on its
    shorter side (talking_world renders portraits at 64 px); boxes come back in the frame's pixels.
    ``adjust_threshold`` shifts the SVM's decision threshold (dlib's ``run``): below 0 it accepts
    weaker detections, for a yes/no "is there a face" check rather than for cropping.
    """

    kind = "dlib_hog"

    def __init__(self, min_side: int = 256, upsample: int = 1, adjust_threshold: float = 0.0):
        dlib = dlib_models.import_dlib("face detector dlib_hog (or choose lbp)")
        self.detector = dlib.get_frontal_face_detector()
        self.min_side, self.upsample, self.adjust_threshold = min_side, upsample, adjust_threshold

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        factor = max(1.0, self.min_side / min(height, width))
        image = np.ascontiguousarray(frame)
        if factor > 1.0:
            image = cv2.resize(image, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_CUBIC)
        found, _, _ = self.detector.run(image, self.upsample, self.adjust_threshold)
        boxes = [[r.left(), r.top(), r.width(), r.height()] for r in found]
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / factor


class DlibCnnDetector:
    """dlib's MMOD CNN face detector on a resized frame (module docstring); boxes in the frame's pixels.

    ``max_side``: the frame is shrunk so that its longer side is at most this (the CNN's cost grows
    with the pixel count); ``min_side``: enlarged so that its shorter side is at least this (small
    portraits); ``upsample``: dlib's own pyramid upsampling; ``min_confidence``: detections scored
    below it are dropped (dlib's own cut is 0; faces usually score about 1).

    The network slides an 80 px window, so with ``upsample`` 0 it finds faces of about 80 px and up
    in the resized frame: at ``max_side`` 320 a face must span a quarter of the frame's longer side
    (true of face crops and portraits, not of a wide shot; raise max_side or upsample for those).
    """

    kind = "dlib_cnn"

    def __init__(self, model: str | None = None, max_side: int = 320, min_side: int = 256, upsample: int = 0,
                 min_confidence: float = 0.0):
        if min_side > max_side:
            raise MemoZooError(f"face detector dlib_cnn: min_side {min_side} is above max_side {max_side}")
        self.detector = dlib_models.cnn_detector(model)
        self.max_side, self.min_side, self.upsample = max_side, min_side, upsample
        self.min_confidence = min_confidence

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        factor = min(self.max_side / max(height, width), max(1.0, self.min_side / min(height, width)))
        image = np.ascontiguousarray(frame)
        if factor != 1.0:
            image = cv2.resize(image, (max(1, round(width * factor)), max(1, round(height * factor))),
                               interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
        found = self.detector(image, self.upsample)
        boxes = [[d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height()] for d in found
                 if d.confidence >= self.min_confidence]
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / factor


def best_detector_kind() -> str:
    """The kind ``best`` stands for here: dlib_cnn, else dlib_hog, else lbp (module docstring)."""
    if dlib_models.available(dlib_models.CNN_DETECTOR):
        return "dlib_cnn"
    return "dlib_hog" if dlib_models.dlib_installed() else "lbp"


# For "is there a face in this portrait": on talking_world's 64 px rest portraits (seeds 0-49) dlib's
# HOG finds 44 at its own threshold and 49 at -0.4, with 1 false face in 30 noise images
# (benchmarks/face_detectors.py; docs/benchmarks.md, "Face detectors").
PORTRAIT_CHECK_THRESHOLD = -0.4


def portrait_detector() -> FaceDetector:
    """The detector for a yes/no face check of a portrait: dlib's HOG at a lenient threshold where
    dlib is installed, else the LBP cascade (which misses more than half of talking_world's faces)."""
    try:
        return DlibHogDetector(adjust_threshold=PORTRAIT_CHECK_THRESHOLD)
    except MemoZooError:
        return LbpDetector(None, 4)


DETECTOR_KINDS = ("lbp", "haar", "yunet", "dlib_hog", "dlib_cnn", "best")


def build_detector(kind: str = "lbp", cascade: str | None = None, model: str | None = None,
                   min_neighbors: int = 4, score_threshold: float = 0.7, max_side: int = 320,
                   upsample: int = 0) -> FaceDetector:
    """The detector ``kind`` (``DETECTOR_KINDS``) with its options (module docstring): ``model`` is
    yunet's ONNX file or dlib_cnn's .dat file (default: the face-recognition-models copy);
    ``max_side`` and ``upsample`` are dlib_cnn's. The detector's ``kind`` attribute names it."""
    if kind == "best":
        kind = best_detector_kind()
    if kind == "dlib_cnn":
        return DlibCnnDetector(model, max_side=max_side, min_side=min(256, max_side), upsample=upsample)
    if kind == "dlib_hog":
        return DlibHogDetector()
    if kind == "haar":
        return HaarDetector(cascade, min_neighbors)
    if kind == "yunet":
        if not model:
            raise MemoZooError("face detector yunet needs model: the path of the YuNet ONNX file")
        return YuNetDetector(model, score_threshold)
    if kind != "lbp":
        raise MemoZooError(f"unknown face detector {kind!r}; choose one of {', '.join(DETECTOR_KINDS)}")
    return LbpDetector(cascade, min_neighbors)


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


def find_faces(detector: FaceDetector, frame: np.ndarray, detect_size: int = 320,
               min_face_size: float = 0.1) -> np.ndarray:
    """Face boxes (N, 4: x, y, w, h) in ``frame``'s own pixels. The frame is shrunk so that its
    longer side is at most ``detect_size`` before detection (speed); boxes smaller than
    ``min_face_size`` x the frame's shorter side are left out."""
    height, width = frame.shape[:2]
    factor = min(1.0, detect_size / max(height, width))
    small = frame if factor == 1.0 else cv2.resize(frame, (max(1, round(width * factor)),
                                                           max(1, round(height * factor))),
                                                   interpolation=cv2.INTER_AREA)
    boxes = detector(small) / factor
    smallest = min_face_size * min(height, width)
    return boxes[np.maximum(boxes[:, 2], boxes[:, 3]) >= smallest] if len(boxes) else boxes


def median_box(boxes: list[np.ndarray]) -> np.ndarray:
    """The median (x, y, w, h) of boxes, taken over their corners: robust to a few misplaced ones."""
    x0, y0, x1, y1 = np.median([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in boxes], axis=0)
    return np.array([x0, y0, x1 - x0, y1 - y0])
