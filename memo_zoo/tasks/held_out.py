"""The held-out clips an experiment generates from and measures against (issue 7, spec §8).

Each clip gives the portrait (its first frame: the person the video must keep, spec §0), the
driving audio (its own track) and the reference the metrics compare with: its frames, and where
the dataset writes it (``talking_world``) its per-frame truth, cut to what was generated. The truth
is read by the dataset component that listed the clip (``memo_zoo.data.truth``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from memo_zoo.atomic import write_atomically
from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.media import read_frames
from memo_zoo.data.truth import ClipTruth
from memo_zoo.errors import MemoZooError
from memo_zoo.generate.config import EmotionSegment
from memo_zoo.eval.protocol import VideoSample
from memo_zoo.tasks.experiment_config import HeldOutConfig


@dataclass(frozen=True)
class HeldOutClip:
    record: ClipRecord
    seconds: float
    # the dataset component that listed the clip: it reads the clip's truth (``TruthReader``)
    dataset: Any = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        # clip ids may hold '/' (MEAD's actor/view/...); file names may not
        return self.record.clip_id.replace("/", "__")

    def truth(self) -> ClipTruth | None:
        """The clip's per-frame truth, read by its dataset; None when the clip has none."""
        if self.record.truth is None:
            return None
        read = getattr(self.dataset, "frame_truth", None)
        if read is None:
            raise MemoZooError(f"clip {self.record.clip_id} names a truth file ({self.record.truth}) that its "
                               f"dataset ({type(self.dataset).__name__}) cannot read: it has no frame_truth")
        return read(self.record)


def select_clips(dataset_config: Any, registry: Any, config: HeldOutConfig) -> list[HeldOutClip]:
    """The ``config.videos`` longest clips of the split that are at least ``min_seconds`` long."""
    if "split" in type(dataset_config).model_fields:
        dataset_config = dataset_config.model_copy(update={"split": config.split})
    dataset = registry.build("dataset", dataset_config)
    records = dataset.clips()
    clips = []
    for record in records:
        if record.fps and record.frame_count:
            seconds = record.frame_count / record.fps
        else:
            from memo_zoo.data.media import probe

            seconds = probe(record.video).duration
        if seconds >= config.min_seconds:
            clips.append(HeldOutClip(record, seconds, dataset))
    if not clips:
        raise MemoZooError(f"task.held_out: data.dataset ({dataset_config.kind}, split {config.split}) has no clip "
                           f"of at least {config.min_seconds} s to evaluate on ({len(records)} clips listed)")
    clips.sort(key=lambda c: (-c.seconds, c.record.clip_id))
    return clips[:config.videos]


def write_portrait(clip: HeldOutClip, path: Path) -> np.ndarray:
    """The clip's first frame, saved as a PNG (atomically) and returned (H, W, 3) uint8."""
    from PIL import Image

    frames, _ = read_frames(clip.record.video, max_frames=1)
    if not len(frames):
        raise MemoZooError(f"{clip.record.video}: no frame to take the portrait from")
    write_atomically(path, lambda temp: Image.fromarray(frames[0]).save(temp, format="PNG"))
    return frames[0]


def truth_arrays(clip: HeldOutClip) -> dict[str, np.ndarray] | None:
    """The clip's per-frame truth arrays (talking_world), or None when the dataset has none."""
    truth = clip.truth()
    return None if truth is None else dict(truth.frames)


def truth_schedule(clip: HeldOutClip, max_seconds: float | None) -> list[EmotionSegment]:
    """The clip's true per-frame emotion as a generation schedule (the 'truth' emotion oracle)."""
    truth = clip.truth()
    if truth is None:
        raise MemoZooError(f"generation.emotion 'truth' needs per-frame truth; clip {clip.record.clip_id} has none "
                           "(use 'detected' or a label)")
    names = truth.emotion
    segments, start = [], 0
    for index in range(1, len(names) + 1):
        if index == len(names) or names[index] != names[start]:
            segments.append(EmotionSegment(start_s=start / truth.fps, end_s=index / truth.fps, label=names[start]))
            start = index
    if max_seconds is not None:
        segments = [s for s in segments if s.start_s < max_seconds]
    return segments


def evaluation_pair(clip: HeldOutClip, generated: Path, portrait: np.ndarray) -> tuple[VideoSample, VideoSample]:
    """(generated, reference) samples for the metrics; both cut to the generated length."""
    video = VideoSample.from_file(generated, id=clip.id, reference_image=portrait)
    count = len(video.frames)
    truth = truth_arrays(clip)
    if truth is not None:
        truth = {name: values[:count] for name, values in truth.items()}
        video = replace(video, truth=truth)
    reference = VideoSample.from_file(clip.record.video, id=clip.id, reference_image=portrait)
    cut = {f.name: getattr(reference, f.name) for f in fields(reference)}
    cut["frames"] = reference.frames[:count]
    if reference.audio is not None:
        cut["audio"] = reference.audio[:int(round(count / reference.fps * 16_000))]
    cut["truth"] = truth
    return video, VideoSample(**cut)
