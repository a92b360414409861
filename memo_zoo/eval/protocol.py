"""What metrics exchange with the evaluation runner, and the helpers they share (spec §8, issue 7).

The metric protocol itself (what the runner calls: ``prepare``, ``update``, ``compute``,
``reset``) is the ``metric`` slot's: ``memo_zoo.slots.metric.Metric``.

``VideoSample`` is one video as the metrics see it: RGB frames uint8 (T, H, W, 3), the driving
audio as float32 mono at 16 kHz (``memo_zoo.data.media.AUDIO_RATE``), the frame rate, and the
reference image the video was generated from, if any, and per-frame ground truth where the data
set has it (``truth``: name -> array with one row per frame, e.g. talking_world's ``mouth_open``
and ``emotion`` of the clip whose audio drove the video; world metrics read it, others ignore it).
``reference`` in ``update`` is the ground
truth video for the same id where the data set has one (FID / FVD / E-FID compare distributions
of generated and ground-truth frames; Sync and Identity need no ground truth).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from memo_zoo.data.media import AUDIO_RATE, MediaError, read_audio, read_frames
from memo_zoo.errors import MemoZooError
from memo_zoo.devices import resolve_device  # noqa: F401 (re-exported: metrics take it from here)
from memo_zoo.settings import get_settings


@dataclass(frozen=True)
class VideoSample:
    """One video: ``frames`` uint8 (T, H, W, 3) RGB, ``audio`` float32 mono at 16 kHz or None,
    ``truth`` per-frame ground-truth arrays (name -> (frames,) array) or None."""

    id: str
    frames: np.ndarray
    fps: float
    audio: np.ndarray | None = None
    reference_image: np.ndarray | None = None
    truth: Mapping[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        frames = self.frames
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 \
                or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"video {self.id!r}: frames must be a non-empty uint8 array (T, H, W, 3), got "
                             f"{getattr(frames, 'shape', None)} {getattr(frames, 'dtype', type(frames).__name__)}")
        if not self.fps > 0:
            raise ValueError(f"video {self.id!r}: fps must be positive, got {self.fps}")
        if self.audio is not None:
            audio = np.asarray(self.audio)
            if audio.ndim != 1:
                raise ValueError(f"video {self.id!r}: audio must be mono (samples,), got shape {audio.shape}")
            # frozen dataclass: normalise the dtype once here rather than in every metric
            object.__setattr__(self, "audio", audio.astype(np.float32, copy=False))
        image = self.reference_image
        if image is not None and (not isinstance(image, np.ndarray) or image.dtype != np.uint8
                                  or image.ndim != 3 or image.shape[-1] != 3):
            raise ValueError(f"video {self.id!r}: reference_image must be uint8 (H, W, 3), got "
                             f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', None)}")

        if self.truth is not None:
            # Truth rows are frames of the driving clip; a generated video may be a frame shorter or
            # longer (rounding of the audio length), so lengths are checked where a metric pairs them.
            bad = [f"{k} {np.shape(v)}" for k, v in self.truth.items() if np.ndim(v) != 1]
            if bad:
                raise ValueError(f"video {self.id!r}: truth arrays must be one value per frame, got {', '.join(bad)}")

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps

    @classmethod
    def from_file(cls, path: str | Path, id: str | None = None, reference_image: np.ndarray | None = None,
                  fps: float | None = None) -> "VideoSample":
        """Decode a video file (and its audio stream, when it has one) with memo-zoo's media reader."""
        frames, rate = read_frames(path, fps=fps)
        try:
            audio = read_audio(path, AUDIO_RATE)
        except MediaError as error:
            if "no audio stream" not in error.reason:
                raise
            audio = None
        return cls(id=id or Path(path).stem, frames=frames, fps=rate, audio=audio, reference_image=reference_image)


@dataclass
class MetricResult:
    """``per_video[id][name]`` and ``summary[name]``: plain floats, ready for MLflow and tables.
    ``series[id][name]``: optional per-frame curves (e.g. identity similarity over time, the
    measured mouth opening) for plots; float arrays, one value per measured frame."""

    per_video: dict[str, dict[str, float]] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)
    series: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def check_new_video(metric: str, per_video: dict, video_id: str) -> None:
    """A video measured twice since the last reset is an error, not a silent double weight in the
    averages (a runner bug that would otherwise go unnoticed). Metrics record a video only once
    it has been measured, so a video whose measurement failed can be given again."""
    if video_id in per_video:
        raise ValueError(f"{metric}: video {video_id!r} was already measured since the last reset")


def reference_image_of(metric: str, generated: VideoSample, reference: VideoSample | None) -> np.ndarray:
    """The image a video must keep the identity of: its own reference image, else the ground truth's
    reference image, else the ground truth's first frame (identity metrics)."""
    image = generated.reference_image
    if image is None and reference is not None:
        image = reference.reference_image if reference.reference_image is not None else reference.frames[0]
    if image is None:
        raise MemoZooError(f"{metric}: video {generated.id!r} has no reference image (nor a ground-truth video to "
                           "take one from)")
    return image


def mean_of(per_video: dict[str, dict[str, float]], key: str) -> float:
    """Mean of ``key`` over the videos that have a finite value for it (NaN when none do)."""
    values = [v[key] for v in per_video.values() if key in v and np.isfinite(v[key])]
    return float(np.mean(values)) if values else float("nan")


def end_windows(values: np.ndarray, fps: float, window_seconds: float,
                window_fraction: float) -> tuple[float, float, int]:
    """(mean of the first window, mean of the last, the window in frames) of a per-frame series:
    ``window_seconds`` at each end, or a ``window_fraction`` of the frames each (at least one) when
    the series is shorter than two windows, so that the two ends never overlap."""
    count = len(values)
    window = int(round(window_seconds * fps))
    if 2 * window > count:
        window = max(1, int(round(count * window_fraction)))
    return float(values[:window].mean()), float(values[-window:].mean()), window


@dataclass
class PerVideoState:
    """A shard's state of a metric whose figures are per video (``ShardableMetric``): its rows and
    series in the order the videos were measured; ``extra`` for what a metric adds (e.g. the world
    measurer's check report)."""

    per_video: dict[str, dict[str, float]]
    series: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def checked_state(metric: str, state: object, kind: type, held: Mapping[str, Any], ids: list[str]) -> None:
    """A state given to ``merge`` must be this metric's kind and bring only videos it does not hold
    (checked before anything is merged, so a refused state leaves the metric unchanged)."""
    if not isinstance(state, kind):
        raise MemoZooError(f"{metric}: merge() was given a {type(state).__name__}, expected the {kind.__name__} "
                           f"that {metric}'s state() hands back")
    seen = set(held)
    for video_id in ids:
        if video_id in seen:
            raise MemoZooError(f"{metric}: video {video_id!r} is in two shards' states (or merged twice)")
        seen.add(video_id)


class PerVideoMerge:
    """``begin_shard`` / ``state`` / ``merge`` (``memo_zoo.slots.metric.ShardableMetric``) of a metric
    whose whole state is its ``per_video`` rows (and ``series``, where it has them): a shard hands
    back its rows, the driver appends them in shard order, so the means over videos are taken over
    the same values in the same order as in one process."""

    name = "metric"
    per_video: dict[str, dict[str, float]]

    def begin_shard(self) -> None:
        """Nothing to keep beyond the rows the metric keeps anyway."""

    def state(self) -> PerVideoState:
        series = getattr(self, "series", None) or {}
        return PerVideoState(per_video={k: dict(v) for k, v in self.per_video.items()},
                             series={k: dict(v) for k, v in series.items()})

    def merge(self, state: object) -> None:
        checked_state(self.name, state, PerVideoState, self.per_video, list(getattr(state, "per_video", {})))
        self.per_video.update({k: dict(v) for k, v in state.per_video.items()})
        if hasattr(self, "series"):
            self.series.update({k: dict(v) for k, v in state.series.items()})


class PerVideoFigures(PerVideoMerge):
    """compute / reset of a metric whose figures are per video (summary: their means over videos,
    ``mean_of``) with per-frame series; a subclass's ``update`` calls ``record`` once per video.
    Shardable over workers (``PerVideoMerge``)."""

    name = "metric"

    def __init__(self) -> None:
        self.per_video: dict[str, dict[str, float]] = {}
        self.series: dict[str, dict[str, np.ndarray]] = {}

    def record(self, video_id: str, figures: dict[str, float], series: dict[str, np.ndarray]) -> None:
        self.per_video[video_id] = figures
        self.series[video_id] = series

    def compute(self) -> MetricResult:
        if not self.per_video:
            raise MemoZooError(f"{self.name}: no video measured")
        keys = next(iter(self.per_video.values())).keys()
        return MetricResult(per_video={k: dict(v) for k, v in self.per_video.items()},
                            summary={key: mean_of(self.per_video, key) for key in keys},
                            series={k: dict(v) for k, v in self.series.items()})

    def reset(self) -> None:
        self.per_video, self.series = {}, {}
