"""The ``emotion_detector`` slot (spec E4, E5, §4): audio -> an emotion label per video segment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot

if TYPE_CHECKING:  # annotations only: the slot table is imported by `memo-zoo --help`, which loads no torch
    import torch
    from torch import Tensor


@runtime_checkable
class EmotionDetector(Protocol):
    """Audio -> emotion label index per video frame (spec E4, E5). Built by ``factory(config)``.

    ``labels``: the label names in index order. ``frame_labels(audio, sample_rate, fps,
    num_frames)`` -> LongTensor (num_frames,); segment labels (the most frequent frame label
    per clip) are derived from these by ``memo_zoo.emotion``-level helpers.
    """

    labels: tuple[str, ...]

    def frame_labels(self, audio: Tensor, sample_rate: int, fps: float, num_frames: int) -> torch.Tensor: ...


SLOT = Slot(
    name="emotion_detector",
    recipe_path="emotion_detector",
    description="emotion detector (spec §4)",
    summary="audio -> emotion label per video segment (spec E4, E5, §4)",
    protocol=EmotionDetector,
)
