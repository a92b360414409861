"""Per-frame face tracks and SyncNet's per-frame face crops, as the reference Sync-C / Sync-D
pipeline makes them (joonson/syncnet_python, ``run_pipeline.py``; golden data in
``tests/data/golden/syncnet_python``).

The reference detects faces on every frame of a 25 fps video, links the detections of one shot
into tracks and cuts a crop per frame that follows the face. Written here from its documented
behaviour, quirks included, because the published Sync-C / Sync-D numbers come from it:

Tracking (``track_faces``), one shot, detections per frame as x1, y1, x2, y2 boxes:
- passes are repeated until no detection is left; each pass starts a track at the first remaining
  detection (in frame order, then list order) and walks forward through the frames;
- a detection joins the track when its IoU with the track's last box is > 0.5 (strict) and it is at
  most ``num_failed_det`` frames after the track's last frame; once that gap is exceeded the pass
  takes nothing more;
- quirk: the reference removes a taken detection from the list it is iterating over, so the
  detection listed right after it in the same frame is skipped in that pass (it stays for a later
  pass); reproduced exactly, because it decides which box a track takes;
- every visited-and-taken detection is used up, including those of tracks that are then dropped;
- a track is kept when it has more than ``min_track`` detections (strict) and the larger of its
  mean box width and mean box height is > ``min_face_size`` pixels; missing frames between its
  detections are filled by linear interpolation of each coordinate.

Cropping (``crop_geometry`` / ``crop_face``), per frame of a track:
- half-side s = max(h, w) / 2 and centre x, y of the box; each of s, x, y is median filtered over
  13 frames with zero padding at the ends (as ``scipy.signal.medfilt`` pads), so the first and last
  6 values lean low: the reference does this and its numbers include it;
- the frame is padded by bsi = int(s (1 + 2 c)) pixels of value 110 (c = ``crop_scale``, 0.4);
- the crop is rows int(y + bsi - s) : int(y + bsi + s (1 + 2 c)), columns
  int(x + bsi - s (1 + c)) : int(x + bsi + s (1 + c)) of the padded frame, in float64, ``int``
  truncating as Python's does: a square 2 s (1 + c) wide whose top is at the box-centre height
  minus s, i.e. it reaches down to the chin and mouth;
- resized to 224 x 224 with OpenCV's bilinear ``cv2.resize`` (its fixed-point weights: bit-exact).

Channel order does not matter here: padding and resizing treat the three channels alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import scipy.signal

from memo_zoo.errors import MemoZooError
from memo_zoo.perception.faces import FaceDetector, find_faces

IOU_THRESHOLD = 0.5      # fixed in the reference: linking needs IoU > this
MEDIAN_KERNEL = 13       # the reference's median filter of s, x, y (frames)
PAD_VALUE = 110          # grey of the padding around a frame, all channels
CROP_SIZE = 224          # SyncNet's input side

Box = tuple[float, float, float, float]   # x1, y1, x2, y2 in pixels (x = column), continuous coordinates


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two x1, y1, x2, y2 boxes in continuous coordinates (width x2 - x1, no + 1)."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return float(inter / (area_a + area_b - inter))


@dataclass(frozen=True)
class FaceTrack:
    """One face track: ``frames`` (n,) consecutive frame numbers, ``boxes`` (n, 4) x1, y1, x2, y2,
    ``detected`` the frame numbers among them where a detection was taken (the rest interpolated)."""

    frames: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def track_faces(detections: Sequence[Sequence[Sequence[float]]], min_track: int, num_failed_det: int,
                min_face_size: float, first_frame: int = 0) -> list[FaceTrack]:
    """Tracks of one shot (module docstring), in the order the reference finds them.

    ``detections[k]`` lists the boxes (x1, y1, x2, y2) found on frame ``first_frame + k``, in the
    detector's order (the reference's: descending confidence). The input is not modified.
    """
    # tuples: list.remove below then matches by value, as the reference's removal of its dicts does
    remaining = [[tuple(float(v) for v in box) for box in boxes] for boxes in detections]
    for k, boxes in enumerate(remaining):
        for box in boxes:
            if len(box) != 4:
                raise MemoZooError(f"face tracking: frame {first_frame + k} has a box of {len(box)} values "
                                   f"{box}; expected x1, y1, x2, y2")
    tracks: list[FaceTrack] = []
    while True:
        frames: list[int] = []
        boxes: list[Box] = []
        for k, faces in enumerate(remaining):
            frame = first_frame + k
            i = 0
            while i < len(faces):
                face = faces[i]
                if frames and frame - frames[-1] > num_failed_det:
                    break
                if not frames or box_iou(face, boxes[-1]) > IOU_THRESHOLD:
                    frames.append(frame)
                    boxes.append(face)
                    faces.remove(face)
                # both when a face was taken (the removal shifted the next one into place i, so it
                # is stepped over, the reference's quirk) and when it was not
                i += 1
        if not frames:
            return tracks
        if len(frames) > min_track:
            track = _interpolated(np.asarray(frames), np.asarray(boxes, dtype=np.float64))
            widths = track.boxes[:, 2] - track.boxes[:, 0]
            heights = track.boxes[:, 3] - track.boxes[:, 1]
            if max(np.mean(widths), np.mean(heights)) > min_face_size:
                tracks.append(track)


def _interpolated(frames: np.ndarray, boxes: np.ndarray) -> FaceTrack:
    """Every frame from the first to the last detection, missing ones linearly interpolated."""
    every = np.arange(frames[0], frames[-1] + 1)
    filled = np.stack([np.interp(every, frames, boxes[:, j]) for j in range(4)], axis=1)
    return FaceTrack(frames=every, boxes=filled, detected=frames)


@dataclass(frozen=True)
class CropGeometry:
    """The reference's per-frame crop of one track: smoothed half-side ``s`` and centre ``x``, ``y``
    (n,), the padding ``bsi`` (n,) and ``rects`` (n, 4) row0, row1, col0, col1 of the padded frame."""

    s: np.ndarray
    x: np.ndarray
    y: np.ndarray
    bsi: np.ndarray
    rects: np.ndarray


def smooth_track(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s, x, y) per frame of x1, y1, x2, y2 ``boxes``, each median filtered (module docstring)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    s = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    x = (boxes[:, 0] + boxes[:, 2]) / 2
    y = (boxes[:, 1] + boxes[:, 3]) / 2
    return tuple(scipy.signal.medfilt(v, kernel_size=MEDIAN_KERNEL) for v in (s, x, y))


def crop_geometry(boxes: np.ndarray, crop_scale: float = 0.4) -> CropGeometry:
    """The crop of every frame of a track's ``boxes`` (module docstring)."""
    s, x, y = smooth_track(boxes)
    bsi, rects = [], []
    for half, cx, cy in zip(s.tolist(), x.tolist(), y.tolist()):  # Python floats: float64 as written
        pad = int(half * (1 + 2 * crop_scale))
        my, mx = cy + pad, cx + pad
        bsi.append(pad)
        rects.append((int(my - half), int(my + half * (1 + 2 * crop_scale)),
                      int(mx - half * (1 + crop_scale)), int(mx + half * (1 + crop_scale))))
    return CropGeometry(s=s, x=x, y=y, bsi=np.asarray(bsi, dtype=np.int64),
                        rects=np.asarray(rects, dtype=np.int64).reshape(-1, 4))


def crop_face(frame: np.ndarray, bsi: int, rect: Sequence[int], size: int = CROP_SIZE) -> np.ndarray:
    """uint8 (H, W, 3) -> (size, size, 3): the frame padded by ``bsi``, ``rect`` cut out, resized."""
    padded = cv2.copyMakeBorder(np.ascontiguousarray(frame), bsi, bsi, bsi, bsi, cv2.BORDER_CONSTANT,
                                value=(PAD_VALUE,) * 3)
    row0, row1, col0, col1 = (int(v) for v in rect)
    # Python slicing as the reference slices (a negative start counts from the end, as there)
    face = padded[row0:row1, col0:col1]
    if face.size == 0:
        raise MemoZooError(f"face crop: rows {row0}:{row1}, columns {col0}:{col1} of a {padded.shape[0]}x"
                           f"{padded.shape[1]} padded frame are empty (the face box lies outside the frame)")
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_LINEAR)


def xywh_to_corners(boxes: np.ndarray) -> np.ndarray:
    """Detector boxes x, y, w, h (memo_zoo.perception.faces) -> x1, y1, x2, y2."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def detect_per_frame(detector: FaceDetector, frames: np.ndarray) -> list[list[Box]]:
    """x1, y1, x2, y2 boxes of every frame (RGB uint8 (T, H, W, 3)), in the detector's order."""
    return [[tuple(box) for box in xywh_to_corners(find_faces(detector, frame)).tolist()] for frame in frames]


def main_face_track(frames: np.ndarray, detector: FaceDetector, min_track: int, num_failed_det: int,
                    min_face_size: float) -> FaceTrack | None:
    """The longest kept track of a one-shot video (the first of equals), None when none is kept.

    The reference also cuts the video into shots (scene detection) and scores every track; the
    videos measured here are single-speaker talking heads of one shot, so the whole video is one
    shot and its main face is the one that is scored.
    """
    tracks = track_faces(detect_per_frame(detector, frames), min_track, num_failed_det, min_face_size)
    return max(tracks, key=len) if tracks else None
