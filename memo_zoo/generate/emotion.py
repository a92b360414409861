"""Emotion per clip (spec E3-E5): the label names, the "no emotion" index and one label per clip.

Each clip gets the most frequent of its frames' labels (E5); a tie goes to the label seen first in
the clip, or (``emotion_ties: smallest``) to the smallest label index, as the released pipeline's
``torch.mode`` does (golden README Q15). The frame labels come from the
recipe's ``emotion_detector`` (a 3 s window per frame, cached per file), from one fixed label or
from a schedule of segments (the E4 override); frames a schedule leaves uncovered are detected.
Without a detector and without a label, every clip gets the "no emotion" embedding (E3), warned.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from memo_zoo.emotion import LABEL_SETS
from memo_zoo.emotion.segments import label_audio_file, segment_labels
from memo_zoo.errors import MemoZooError
from memo_zoo.generate.config import NO_EMOTION, GenerateConfig
from memo_zoo.generate.loading import GeneratorModel
from memo_zoo.generate.warning import GenerationWarning


def emotion_labels(model: GeneratorModel, config: GenerateConfig) -> tuple[str, ...]:
    """Names of the emotion classes, index order (E4, §10); see ``GenerateConfig.label_set``."""
    classes = model.emotion_classes
    if config.label_set is not None:
        labels = LABEL_SETS[config.label_set]
    elif model.emotion_detector is not None:
        labels = tuple(model.emotion_detector.labels)
    elif model.label_set is not None:
        labels = LABEL_SETS[model.label_set]
    else:
        by_size = [names for names in LABEL_SETS.values() if len(names) == classes]
        labels = by_size[0] if by_size else LABEL_SETS["paper"]
    if classes is not None and len(labels) != classes:
        raise MemoZooError(f"the emotion labels ({len(labels)}: {', '.join(labels)}) do not match the network's "
                           f"{classes} emotion classes (model.audio_fusion.num_emotion_classes); set label_set or "
                           "use a detector with that many classes")
    detector = model.emotion_detector
    if detector is not None and tuple(detector.labels) != labels:
        raise MemoZooError(f"the emotion_detector's labels ({', '.join(detector.labels)}) differ from the label set "
                           f"used for generation ({', '.join(labels)})")
    return labels


def no_emotion_index(model: GeneratorModel, labels: tuple[str, ...]) -> int:
    """Index of the "no emotion" embedding (E3): the last row of the network's emotion table."""
    return model.emotion_classes if model.emotion_classes is not None else len(labels)


def _detected_frame_labels(model: GeneratorModel, audio_path: Path, audio: np.ndarray, fps: float,
                           frames: int, no_emotion: int) -> Tensor:
    detector = model.emotion_detector
    if detector is None:
        warnings.warn("the recipe has no emotion_detector and no emotion was given: generating with the "
                      "'no emotion' embedding (E3)", GenerationWarning, stacklevel=4)
        return torch.full((frames,), no_emotion, dtype=torch.long)
    # Cached per file and detector (expensive backbones), 3 s window per frame (E5).
    return label_audio_file(detector, audio_path, fps, frames).long().reshape(-1)


def smallest_modes(frame_labels: Tensor, clip_frames: int) -> Tensor:
    """The most frequent label of each run of ``clip_frames`` frames (the last may be shorter), ties
    to the SMALLEST label (Q15: ``torch.mode``'s choice). LongTensor (clips,)."""
    labels = frame_labels.long().reshape(-1)
    if bool((labels < 0).any()):
        raise MemoZooError(f"emotion labels must be class indices >= 0; got {labels.min().item()}")
    # argmax returns the first maximum: among equal counts, the smallest label
    return torch.tensor([int(torch.bincount(labels[start:start + clip_frames]).argmax())
                         for start in range(0, labels.numel(), clip_frames)], dtype=torch.long)


def clip_emotions(model: GeneratorModel, config: GenerateConfig, audio: np.ndarray, fps: float,
                  frames: int) -> tuple[Tensor, list[dict[str, Any]]]:
    """One emotion index per clip (E5) and a JSON-ready description of the schedule used."""
    labels = emotion_labels(model, config)
    no_emotion = no_emotion_index(model, labels)

    def index(name: str) -> int:
        if name == NO_EMOTION:
            return no_emotion
        if name not in labels:
            raise MemoZooError(f"unknown emotion {name!r}; the labels are: {', '.join(labels)} (or '{NO_EMOTION}')")
        return labels.index(name)

    emotion = config.emotion
    if isinstance(emotion, str):
        per_frame, source = torch.full((frames,), index(emotion), dtype=torch.long), "override"
    elif emotion is None:
        per_frame = _detected_frame_labels(model, config.audio, audio, fps, frames, no_emotion)
        source = "detected" if model.emotion_detector is not None else "none"
    else:
        per_frame = torch.full((frames,), -1, dtype=torch.long)
        middle = (torch.arange(frames, dtype=torch.float64) + 0.5) / fps  # a frame belongs where it is shown
        for segment in emotion:
            inside = (middle >= segment.start_s) & (middle < segment.end_s)
            per_frame[inside] = index(segment.label)
        uncovered = per_frame < 0
        if bool(uncovered.any()):
            detected = _detected_frame_labels(model, config.audio, audio, fps, frames, no_emotion)
            per_frame[uncovered] = detected[uncovered]
        source = "schedule"
    clip = config.clip_frames
    per_clip = segment_labels(per_frame, clip) if config.emotion_ties == "first" else smallest_modes(per_frame, clip)
    names = list(labels) + [NO_EMOTION]
    schedule = [{"clip": k, "start_s": k * clip / fps, "end_s": min((k + 1) * clip, frames) / fps,
                 "label": names[int(label)] if 0 <= int(label) < len(names) else str(int(label)), "source": source}
                for k, label in enumerate(per_clip.tolist())]
    return per_clip, schedule
