"""``preprocess: {kind: resize}``: centre-crop to a square and resize (spec §7: "center-crop and
resize to 512"), optionally resampling the frame rate.

The audio is carried over unchanged: a resample keeps the clip's duration, so the audio still
lines up with the frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.pipeline import StageResult, load_clip, write_clip


class ResizeConfig(BaseModel):
    """Centre-crop every frame to a square, resize it to `size`, optionally change the frame rate."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(512, ge=16, description="output side in pixels, even (spec §7: 512)")
    fps: Optional[float] = Field(None, gt=0, description="resample to this frame rate (e.g. 25 or 30); "
                                                          "null keeps the clip's rate")

    @field_validator("size")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"size must be even (H.264 4:2:0), got {value}")
        return value


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
