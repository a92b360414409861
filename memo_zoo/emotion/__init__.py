"""Emotion label sets (spec E4, §10).

- ``paper``: the paper's 8 classes, in the paper's order (spec E4).
- ``emotion2vec``: the 9 classes of emotion2vec+ (the backbone of the released classifier,
  spec §10: "9 classes"), in emotion2vec's order.

Index ``len(labels)`` is the "no emotion" slot that classifier-free guidance uses (spec E3).
"""

from __future__ import annotations

from typing import Literal

PAPER_LABELS: tuple[str, ...] = ("angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised", "others")
EMOTION2VEC_LABELS: tuple[str, ...] = (
    "angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown")
LABEL_SETS: dict[str, tuple[str, ...]] = {"paper": PAPER_LABELS, "emotion2vec": EMOTION2VEC_LABELS}
LabelSet = Literal["paper", "emotion2vec"]

WINDOW_SECONDS = 3.0  # spec E5: the audio window labelled per video frame (memo_zoo.emotion.segments)


def no_emotion_index(label_set: LabelSet = "paper") -> int:
    return len(LABEL_SETS[label_set])


def label_index(label: str, label_set: LabelSet = "paper") -> int:
    labels = LABEL_SETS[label_set]
    if label not in labels:
        raise ValueError(f"unknown emotion {label!r}; the {label_set} label set has: {', '.join(labels)}")
    return labels.index(label)
