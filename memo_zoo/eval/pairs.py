"""What the evaluation runner is given per video: a decoded (generated, reference) pair, or a loader
that decodes one when called.

Loaders are what cross the wire to a worker when the evaluation is sharded (``memo_zoo.eval.sharded``):
a ``FilePair`` is a few paths and small arrays, and the worker decodes the videos itself, one at
a time, as the single-process runner does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable, Mapping, Union

import numpy as np

from memo_zoo.data.media import AUDIO_RATE
from memo_zoo.eval.protocol import VideoSample

Pair = tuple[VideoSample, Union[VideoSample, None]]
PairLoader = Callable[[], Pair]
PairItem = Union[Pair, PairLoader]


def load_pair(item: PairItem) -> Pair:
    """The decoded pair of an item: a loader is called, a pair is returned as it is."""
    return item() if callable(item) else item


@dataclass(frozen=True)
class FilePair:
    """A generated video file and its ground-truth video file (or none), decoded when called.

    ``reference_image`` (the portrait the video was generated from) goes on both samples and
    ``truth`` (per-frame arrays of the driving clip) on both, cut to the generated length; the
    ground truth's frames and audio are cut to the generated length too (a video generated from
    the first seconds of a clip is compared with those seconds). This is the experiment task's
    pairing (``memo_zoo.tasks.held_out.evaluation_pair``) for files and arrays only.
    """

    id: str
    generated: Path
    reference: Path | None = None
    reference_image: np.ndarray | None = None
    truth: Mapping[str, np.ndarray] | None = None

    def __call__(self) -> Pair:
        video = VideoSample.from_file(self.generated, id=self.id, reference_image=self.reference_image)
        count = len(video.frames)
        truth = None if self.truth is None else {name: np.asarray(v)[:count] for name, v in self.truth.items()}
        if truth is not None:
            video = replace(video, truth=truth)
        if self.reference is None:
            return video, None
        reference = VideoSample.from_file(self.reference, id=self.id, reference_image=self.reference_image)
        cut = {f.name: getattr(reference, f.name) for f in fields(reference)}
        cut["frames"] = reference.frames[:count]
        if reference.audio is not None:
            cut["audio"] = reference.audio[:int(round(count / reference.fps * AUDIO_RATE))]
        cut["truth"] = truth
        return video, VideoSample(**cut)
