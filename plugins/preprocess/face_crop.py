"""``preprocess: {kind: face_crop}``: keep clips with exactly one whole face and crop around it.

Spec §7: "face detection, drop no-face / partial / multi-head, crop the box scaled by 1.1". A face
detector runs on every ``sample_every``-th frame. The clip is dropped when too few samples show a
face, when too many show more than one, or when the face box touches the frame border (a face cut
by the border). Otherwise the square crop is centred on the median face box over the samples,
``scale`` times its larger side, and fixed for the whole clip: a per-frame crop would shake with
the detector's jitter, which the model would learn as head motion.

Detectors (``detector``: lbp, haar, yunet) are the core's (``memo_zoo.perception.faces``), shared
with the face metrics and generation's portrait check.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.pipeline import StageResult, load_clip, write_clip
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
        x, y, w, h = median_box(single)
        x0, y0, x1, y1 = x, y, x + w, y + h
        mx, my = config.border_margin * width, config.border_margin * height
        if x0 <= mx or y0 <= my or x1 >= width - mx or y1 >= height - my:
            return StageResult.drop(
                f"partial face: box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f}) touches the {width}x{height} "
                "frame border", with_face / samples)
        left, top, side = square_crop(np.array([x, y, w, h]), config.scale, height, width)
        crops = frames[:, top:top + side, left:left + side]
        if config.size is not None and config.size != side:
            interpolation = cv2.INTER_AREA if config.size < side else cv2.INTER_CUBIC
            crops = np.stack([cv2.resize(f, (config.size, config.size), interpolation=interpolation) for f in crops])
        output = write_clip(clip, out_dir, np.ascontiguousarray(crops), fps, audio)
        return StageResult.keep(output, reason=f"face {x1 - x0:.0f}x{y1 - y0:.0f} px, crop {side} px at "
                                               f"({left}, {top})", value=with_face / samples)


def build(config: FaceCropConfig) -> FaceCrop:
    return FaceCrop(config)
