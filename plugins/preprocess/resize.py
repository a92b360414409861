"""``preprocess: {kind: resize}``: centre-crop to a square and resize (spec §7: "center-crop and
resize to 512"), optionally resampling the frame rate.

The audio is carried over unchanged: a resample keeps the clip's duration, so the audio still
lines up with the frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.pipeline import StageResult, load_clip, write_clip
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.preprocess.configs import ResizeConfig


def center_square(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, size, size, 3): the centred square of side min(H, W), resized."""
    height, width = frames.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = frames[:, top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    # INTER_AREA averages when shrinking (no aliasing); cubic keeps edges when enlarging.
    interpolation = cv2.INTER_AREA if size < side else cv2.INTER_CUBIC
    return np.stack([cv2.resize(np.ascontiguousarray(f), (size, size), interpolation=interpolation)
                     for f in square])


class Resize:
    name = "resize"

    def __init__(self, config: ResizeConfig):
        self.config = config

    def process(self, clip: ClipRecord, out_dir: Path) -> StageResult:
        frames, fps, audio = load_clip(clip, fps=self.config.fps)
        height, width = frames.shape[1:3]
        output = write_clip(clip, out_dir, center_square(frames, self.config.size), fps, audio)
        return StageResult.keep(output, reason=f"{width}x{height} -> {self.config.size}x{self.config.size} "
                                               f"at {fps:g} fps")


def build(config: ResizeConfig) -> Resize:
    return Resize(config)
