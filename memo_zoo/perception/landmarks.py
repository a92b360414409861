"""Face landmarks with dlib's shape predictors, and what is built from them: mouth boxes, eye
centres and aligned face crops.

``LandmarkPredictor(points)`` runs dlib's 68-point (iBUG 300-W) or 5-point shape predictor
(``dlib_models``: from the face-recognition-models pip package, offline) inside a face box of a
detector (``memo_zoo.perception.faces``, x, y, w, h) and gives (K, 2) float (x, y) points in the
frame's pixels. The predictors were trained on dlib's HOG detector boxes; other detectors' boxes
work when they are about as tight (the CNN's are a little smaller and higher, which costs ~1 px).

Point layouts (image left / right, as seen in the frame):
- 68: jaw 0-16, brows 17-26, nose bridge 27-30 (30: the tip), nostrils 31-35, eye on the image
  left 36-41, eye on the image right 42-47, outer lips 48-59 (48, 54: the corners), inner lips 60-67;
- 5: image-right eye outer, inner corner (0, 1), image-left eye outer, inner corner (2, 3), the
  base of the nose (4).

Alignment (``align_face``) fits a similarity transform (rotation, uniform scale, shift: no shear,
so the face keeps its shape) by least squares (Umeyama) from landmarks to ArcFace's 112 x 112
five-point template (insightface's ``arcface_dst``: eye centres, nose tip, mouth corners), scaled
to the requested size, and warps the frame with it. From 68 points all five template points are
used; from 5 points only the two eye centres (the 5-point model's nose point is the nose base,
not the tip the template places). dlib's own chip alignment (``dlib.get_face_chip``, 150 px, for
its recognition network) is ``face_chip``.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from memo_zoo.errors import MemoZooError
from memo_zoo.perception import dlib_models

# insightface's arcface_dst: image-left eye, image-right eye, nose tip, mouth corners (left, right),
# in the pixels of a 112 x 112 crop.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]])
ARCFACE_SIZE = 112
MOUTH = slice(48, 68)


def _rectangle(dlib: Any, box: Sequence[float]) -> Any:
    x, y, w, h = (float(v) for v in box)
    return dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)) - 1, int(round(y + h)) - 1)


class LandmarkPredictor:
    """dlib's ``points``-point shape predictor (68 or 5); ``model``: an explicit .dat file instead
    of the face-recognition-models copy. ``predictor(frame, box)`` -> (K, 2) float64 (x, y)."""

    def __init__(self, points: int = 68, model: str | None = None):
        self.dlib = dlib_models.import_dlib(f"{points}-point face landmarks")
        self.points = points
        self.predictor = dlib_models.shape_predictor(points, model)

    def shape(self, frame: np.ndarray, box: Sequence[float]) -> Any:
        """dlib's ``full_object_detection`` of ``box`` (x, y, w, h) in RGB uint8 ``frame``: what
        ``dlib.get_face_chip`` takes."""
        return self.predictor(np.ascontiguousarray(frame), _rectangle(self.dlib, box))

    def __call__(self, frame: np.ndarray, box: Sequence[float]) -> np.ndarray:
        shape = self.shape(frame, box)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye, image-right eye) centres (2,) of 68- or 5-point landmarks: the mean of
    each eye's 6 contour points (68) or 2 corners (5)."""
    if len(landmarks) == 68:
        return landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    if len(landmarks) == 5:
        return landmarks[2:4].mean(axis=0), landmarks[0:2].mean(axis=0)
    raise MemoZooError(f"eye centres: landmarks must have 68 or 5 points, got {len(landmarks)}")


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """68-point landmarks -> (5, 2) in the ArcFace template's order: eye centres, nose tip (30),
    mouth corners (48, 54)."""
    if len(landmarks) != 68:
        raise MemoZooError(f"five_points: needs 68-point landmarks, got {len(landmarks)} points")
    left, right = eye_centres(landmarks)
    return np.stack([left, right, landmarks[30], landmarks[48], landmarks[54]])


def mouth_box(landmarks: np.ndarray, margin: float = 0.3) -> np.ndarray:
    """(x0, y0, x1, y1) in pixels around the lips (68-point landmarks 48-67), widened by ``margin``
    x the lips' width on every side (so a half-open jaw and the lip corners' motion stay inside)."""
    if len(landmarks) != 68:
        raise MemoZooError(f"mouth_box: needs 68-point landmarks, got {len(landmarks)} points")
    lips = landmarks[MOUTH]
    x0, y0 = lips.min(axis=0)
    x1, y1 = lips.max(axis=0)
    pad = margin * (x1 - x0)
    return np.array([x0 - pad, y0 - pad, x1 + pad, y1 + pad])


def frame_landmarks(frames: np.ndarray, detector: Any, predictor: LandmarkPredictor,
                    sample_every: int = 1) -> list[np.ndarray]:
    """The landmarks of every ``sample_every``-th frame that shows exactly one face to ``detector``
    (``memo_zoo.perception.faces``); frames with none or several are skipped, not guessed."""
    found = []
    for frame in frames[::sample_every]:
        boxes = detector(frame)
        if len(boxes) == 1:
            found.append(predictor(frame, boxes[0]))
    return found


def clip_mouth_box(landmarks: Sequence[np.ndarray], height: int, width: int,
                   margin: float = 0.3) -> tuple[float, float, float, float]:
    """The mouth box of a clip in fractions of the frame (x0, y0, x1, y1, clipped to [0, 1]), the
    form of a recipe's ``loss_regions`` box: the per-corner median of ``mouth_box`` over the
    frames' 68-point landmarks. The median keeps the box of the usual mouth position, robust to a
    few frames whose landmarks failed; a jaw that opens wider than the margin in some frames pokes
    out of it, as with any fixed box."""
    if not len(landmarks):
        raise MemoZooError("clip_mouth_box: no landmarks (no frame had a face)")
    x0, y0, x1, y1 = np.median([mouth_box(points, margin) for points in landmarks], axis=0)
    box = (max(0.0, x0 / width), max(0.0, y0 / height), min(1.0, x1 / width), min(1.0, y1 / height))
    if not (box[0] < box[2] and box[1] < box[3]):
        raise MemoZooError(f"clip_mouth_box: the mouth box {[round(v, 3) for v in box]} lies outside the "
                           f"{width} x {height} frame")
    return box


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix of the similarity transform (rotation, uniform scale, shift) that maps
    ``source`` points (N >= 2, 2) closest to ``target`` in least squares (Umeyama, 1991)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 2:
        raise MemoZooError(f"similarity_transform: needs two matching (N >= 2, 2) point sets, got "
                           f"{source.shape} and {target.shape}")
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    variance = (s ** 2).sum() / len(s)
    if variance == 0:
        raise MemoZooError("similarity_transform: the source points all coincide")
    u, d, vt = np.linalg.svd(t.T @ s / len(s))
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])  # no reflection
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / variance
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_t - scale * rotation @ mu_s
    return matrix


def align_face(frame: np.ndarray, landmarks: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """The ``size`` x ``size`` RGB crop of ``frame`` with the face moved onto ArcFace's five-point
    template (scaled by size / 112) by a similarity transform fitted to the 68- or 5-point
    ``landmarks`` (module docstring); outside the frame is black."""
    template = ARCFACE_TEMPLATE * (size / ARCFACE_SIZE)
    if len(landmarks) == 68:
        source, target = five_points(landmarks), template
    elif len(landmarks) == 5:
        source, target = np.stack(eye_centres(landmarks)), template[:2]
    else:
        raise MemoZooError(f"align_face: landmarks must have 68 or 5 points, got {len(landmarks)}")
    matrix = similarity_transform(source, target)
    return cv2.warpAffine(np.ascontiguousarray(frame), matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def align_frames(predictor: LandmarkPredictor, frames: np.ndarray, box: Sequence[float],
                 size: int = ARCFACE_SIZE) -> np.ndarray:
    """uint8 (T, size, size, 3): each frame's face aligned (``align_face``) with ``predictor``'s
    landmarks found inside ``box`` (x, y, w, h), the same box for all frames (a video's fixed box)."""
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        out[index] = align_face(frame, predictor(frame, box), size)
    return out


def face_chip(predictor: LandmarkPredictor, frame: np.ndarray, box: Sequence[float], size: int = 150,
              padding: float = 0.25) -> np.ndarray:
    """dlib's aligned face chip (``dlib.get_face_chip``: its own template fitted to the shape
    predictor's points), ``size`` px with ``padding`` x the face's size around it: 150 and 0.25 are
    what dlib's recognition network expects."""
    shape = predictor.shape(frame, box)
    return predictor.dlib.get_face_chip(np.ascontiguousarray(frame), shape, size=size, padding=padding)
