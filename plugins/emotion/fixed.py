"""``fixed``: one manual label for every frame (the paper's override of the detector, spec E4)."""

from __future__ import annotations

import torch

from memo_zoo.emotion import LABEL_SETS, label_index
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.emotion.configs import FixedEmotionConfig


class FixedEmotionDetector:
    def __init__(self, config: FixedEmotionConfig):
        self.labels = LABEL_SETS[config.label_set]
        self.index = label_index(config.label, config.label_set)

    def frame_labels(self, audio: torch.Tensor, sample_rate: int, fps: float, num_frames: int) -> torch.Tensor:
        """Label index per video frame, shape (num_frames,); the audio is not looked at."""
        if num_frames < 0:
            raise ValueError(f"num_frames must be >= 0, got {num_frames}")
        return torch.full((num_frames,), self.index, dtype=torch.long)


def build(config: FixedEmotionConfig) -> FixedEmotionDetector:
    return FixedEmotionDetector(config)
