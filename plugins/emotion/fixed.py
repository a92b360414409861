"""``fixed``: one manual label for every frame (the paper's override of the detector, spec E4)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from memo_zoo.emotion import LABEL_SETS, LabelSet, label_index


class FixedEmotionConfig(BaseModel):
    """The same emotion label for every frame."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field("neutral", description="emotion name from the label set")
    label_set: LabelSet = Field("paper", description="'paper' (8 classes) or 'emotion2vec' (9)")

    @model_validator(mode="after")
    def _label_in_set(self) -> "FixedEmotionConfig":
        if self.label not in LABEL_SETS[self.label_set]:
            raise ValueError(f"label {self.label!r} is not in the {self.label_set} label set: "
                             f"{', '.join(LABEL_SETS[self.label_set])}")
        return self


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
