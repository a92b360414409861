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
from typing import Literal, Optional

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.pipeline import StageResult, load_clip, write_clip
from memo_zoo.perception.faces import HAAR_FILE, FaceDetector, build_detector, find_faces, median_box, square_crop


class FaceCropConfig(BaseModel):
    """Drop clips with no / several / partial faces; crop a fixed square around the face."""

    model_config = ConfigDict(extra="forbid")

    detector: Literal["lbp", "haar", "yunet", "dlib_hog"] = Field(
        "lbp", description="face detector: lbp (OpenCV LBP cascade shipped by scikit-image), haar (OpenCV "
                           "Haar cascade; needs cv2.CascadeClassifier: OpenCV 4.x or opencv-contrib 5.x), "
                           "yunet (cv2.FaceDetectorYN with a local ONNX model), dlib_hog (dlib's HOG "
                           "detector, no model file)")
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
