"""SCRFD face detection with ONNX Runtime, as insightface runs it for the released code (§10).

The release's ``FaceAnalysis`` detects faces with an SCRFD network (``scrfd_10g_bnkps.onnx``)
and feeds the largest face's 5 landmarks to the ArcFace alignment. This module reproduces
insightface's SCRFD wrapper on top of a bare ONNX Runtime session:

- letterbox: the image is resized (bilinear) to fit ``det_size`` keeping its aspect ratio and
  pasted at the top-left of a black ``det_size`` canvas; boxes are divided back by that scale;
- input: RGB, ``(pixel - 127.5) / 128``, (1, 3, H, W);
- outputs, in session order: the scores of every stride, then the box distances of every
  stride, then (``bnkps`` models) the landmark offsets of every stride. Each row is one anchor:
  anchors are the pixel centres ``(x, y) * stride`` of the stride's grid, row-major, each
  repeated ``anchors`` times. 6 / 9 outputs: strides 8, 16, 32 with 2 anchors (without / with
  landmarks); 10 / 15 outputs: strides 8 ... 128 with 1 anchor. Distances are in units of the
  stride: box = ``(cx - l, cy - t, cx + r, cy + b)``, landmark = anchor + offset;
- candidates scoring at least ``det_thresh`` are sorted by score and reduced by greedy NMS at
  IoU ``nms_thresh`` (0.4), with the "+1 pixel" box areas of insightface's NMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memo_zoo.errors import MemoZooError
from memo_zoo.perception.onnx_models import open_session, static_dim

INPUT_MEAN = 127.5
INPUT_STD = 128.0

# outputs -> (strides, anchors per position, with landmarks): insightface's SCRFD layouts.
LAYOUTS: dict[int, tuple[tuple[int, ...], int, bool]] = {
    6: ((8, 16, 32), 2, False),
    9: ((8, 16, 32), 2, True),
    10: ((8, 16, 32, 64, 128), 1, False),
    15: ((8, 16, 32, 64, 128), 1, True),
}


@dataclass(frozen=True)
class Detections:
    """Faces of one image, best score first: ``boxes`` (N, 4) x1 y1 x2 y2 in image pixels,
    ``scores`` (N,), ``landmarks`` (N, 5, 2) or None for a model without landmarks."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None

    def __len__(self) -> int:
        return len(self.scores)

    def largest(self) -> int:
        """Index of the face with the largest box area, the first of equals (the release sorts
        the faces by area, stably, and keeps the first)."""
        areas = (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])
        return int(np.argmax(areas))


def anchor_centres(height: int, width: int, stride: int, anchors: int) -> np.ndarray:
    """(height * width * anchors, 2) anchor centres (x, y) in input pixels, row-major, each
    position repeated ``anchors`` times in a row."""
    ys, xs = np.mgrid[:height, :width]
    centres = (np.stack([xs, ys], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
    return np.repeat(centres, anchors, axis=0) if anchors > 1 else centres


def distances_to_boxes(centres: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(N, 4) boxes from anchor centres (N, 2) and (left, top, right, bottom) distances (N, 4)."""
    return np.concatenate([centres - distances[:, :2], centres + distances[:, 2:4]], axis=1)


def offsets_to_points(centres: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(N, K, 2) points from anchor centres (N, 2) and (dx, dy) offsets (N, 2K)."""
    return centres[:, None, :] + offsets.reshape(len(offsets), -1, 2)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best score first. A box is dropped when its
    IoU with a kept box exceeds ``threshold``; areas count the end pixel (``x2 - x1 + 1``), as in
    insightface's SCRFD."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = w * h / (areas[best] + areas[rest] - w * h)
        order = rest[overlap <= threshold]
    return keep


def decode(outputs: list[np.ndarray], input_height: int, input_width: int, strides: tuple[int, ...],
           anchors: int, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(scores (N,), boxes (N, 4), landmarks (N, 5, 2) or None) of the anchors scoring at least
    ``threshold``, in input pixels, stride by stride; ``outputs`` in session order (module
    docstring), batched outputs (1, rows, k) taken at their first image."""
    count = len(strides)
    with_points = len(outputs) == 3 * count
    outputs = [out[0] if out.ndim == 3 else out for out in outputs]
    scores, boxes, points = [], [], []
    for index, stride in enumerate(strides):
        centres = anchor_centres(input_height // stride, input_width // stride, stride, anchors)
        score = outputs[index].reshape(-1)
        if len(score) != len(centres):
            raise MemoZooError(f"SCRFD output {index} (stride {stride}) has {len(score)} rows, expected "
                               f"{len(centres)} = ({input_height}/{stride}) x ({input_width}/{stride}) x {anchors}")
        keep = np.where(score >= threshold)[0]
        scores.append(score[keep])
        boxes.append(distances_to_boxes(centres, outputs[index + count] * stride)[keep])
        if with_points:
            points.append(offsets_to_points(centres, outputs[index + 2 * count] * stride)[keep])
    return (np.concatenate(scores), np.concatenate(boxes),
            np.concatenate(points) if with_points else None)


class ScrfdDetector:
    """An SCRFD ONNX model with insightface's pre- and post-processing (module docstring)."""

    def __init__(self, path: Path, det_size: int = 640, det_thresh: float = 0.5, nms_thresh: float = 0.4,
                 device: str = "cpu", threads: int = 0):
        self.path = path
        self.session = open_session(path, "SCRFD face detector", device, threads)
        outputs = self.session.get_outputs()
        if len(outputs) not in LAYOUTS:
            raise MemoZooError(f"SCRFD face detector: {path} has {len(outputs)} outputs; an SCRFD model has "
                               f"{', '.join(map(str, LAYOUTS))} (scores, boxes[, landmarks] per stride). Is this the "
                               "detector (scrfd_10g_bnkps.onnx / det_10g.onnx)?")
        self.strides, self.anchors, self.with_landmarks = LAYOUTS[len(outputs)]
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [out.name for out in outputs]
        shape = self.session.get_inputs()[0].shape
        fixed_h, fixed_w = static_dim(shape[2]), static_dim(shape[3])
        # A model exported with a fixed input size keeps it (insightface ignores det_size then).
        self.input_size = (fixed_w, fixed_h) if fixed_h and fixed_w else (det_size, det_size)
        self.det_thresh = det_thresh
        self.nms_thresh = nms_thresh

    def letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """``image`` (H, W, 3 uint8) fitted into the input size, top-left; (canvas, scale)."""
        import cv2

        width, height = self.input_size
        if image.shape[0] / image.shape[1] > height / width:
            new_h, new_w = height, int(height / (image.shape[0] / image.shape[1]))
        else:
            new_w, new_h = width, int(width * (image.shape[0] / image.shape[1]))
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
        return canvas, new_h / image.shape[0]

    def detect(self, image: np.ndarray) -> Detections:
        """Faces of an (H, W, 3) uint8 RGB image, best score first (module docstring)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"detect needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        canvas, scale = self.letterbox(image)
        blob = ((canvas.astype(np.float32) - INPUT_MEAN) / INPUT_STD).transpose(2, 0, 1)[None]
        outputs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob)})
        scores, boxes, points = decode(outputs, blob.shape[2], blob.shape[3], self.strides, self.anchors,
                                       self.det_thresh)
        order = scores.argsort()[::-1]
        scores, boxes = scores[order].astype(np.float32), (boxes / scale)[order].astype(np.float32)
        keep = nms(boxes, scores, self.nms_thresh)
        landmarks = None if points is None else (points / scale)[order][keep].astype(np.float32)
        return Detections(boxes[keep], scores[keep], landmarks)
