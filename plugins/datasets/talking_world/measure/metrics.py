"""The world metrics: lip sync, identity, expression and a Frechet distance, read by the world measurer.

Spec §8's questions (lips in sync, identity kept over a long video, expression following the
audio's emotion (spec E4), realism) answered on talking_world without pretrained weights: a
:class:`~.measurer.WorldMeasurer` trained on the world (``store.load_or_train_measurer``) reads
each generated frame, and the readings are compared with the per-frame truth of the clip whose
audio drove the video (``VideoSample.truth``, from talking_world's truth files; the generated
video's own, else its ground-truth video's). Where a video and its truth differ in length (the
audio's rounding), both are cut to the shorter.

- ``world_lip_sync``: Pearson r between the measured mouth opening and truth ``mouth_open`` (the
  speech-driven opening) per video: ``lip_sync_r`` at lag 0, and the best r over lags
  -``max_lag``..``max_lag`` (``lip_sync_best_r``) and its lag (``lip_sync_lag``, frames). Sign: at
  lag k the measured frame t + k is paired with truth frame t, so a positive lag means the video
  lags the audio (the mouth moves k frames late). Ties go to the smaller |lag|.
- ``world_identity``: cosine of the measurer's identity embeddings, reference image vs each frame
  (``world_identity``), over the first and the last ``window_seconds`` (``world_identity_first``,
  ``world_identity_last``; a ``window_fraction`` of the frames each when the video is shorter than
  two windows) and ``world_identity_drift`` = first - last (positive: the face drifts away from
  the reference over the video, what MEMO's memory is meant to prevent). The reference image is
  the video's ``reference_image``, else its ground-truth video's, else that video's first frame.
  The embedding still moves with expression: on the default world's own held-out videos the
  drift was -0.01..0.41, the largest on clips whose emotion changes midway (docs/evaluation.md);
  compare variants on the same videos rather than reading the drift as an absolute.
- ``world_expression``: on the frames whose truth ``intensity`` >= ``min_intensity`` (a fading
  expression is ambiguous), the fraction whose measured label is the truth ``emotion``
  (``world_expression_acc``; chance 1/8), and whether the video's most frequent measured label is
  its most frequent truth label over those frames (``world_expression_clip``, 0 or 1; spec E5's
  clip label, ties to the earlier label).
- ``world_fd``: Frechet distance between the measurer's pooled trunk features of the generated
  frames and of the ground-truth frames (the ``reference`` videos), over the whole set and per
  video (``memo_zoo.eval.frechet``).

Summaries are means over videos (``mean_of``: videos where a figure is undefined, NaN, are left
out); ``world_fd``'s is the distance of the pooled sets. ``MetricResult.series`` holds the
per-frame curves named in each metric's docstring.

Sharded over workers (``memo_zoo.slots.metric.ShardableMetric``): the per-video metrics hand back
their rows and series (``PerVideoFigures``), ``world_fd`` its feature rows (``FrechetMetric``);
each state also carries the measurer's check report, so the driver, which loads no measurer, can
log it beside the figures.
"""

from __future__ import annotations

import numpy as np

from memo_zoo.errors import MemoZooError
from memo_zoo.eval.frechet import FrechetMetric
from memo_zoo.eval.protocol import (PerVideoFigures, VideoSample, check_new_video, end_windows,
                                    reference_image_of, resolve_device)

from .measurer import Measurements
from .stats import best_lag, lagged_correlations, pearson
from .store import load_or_train_measurer, share
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import (  # noqa: F401
    MeasurerSource, WorldExpressionConfig, WorldFdConfig, WorldIdentityConfig, WorldLipSyncConfig, WorldMetricConfig,
)


class _Measuring:
    """The measurer of a world metric: loaded (or trained) by ``prepare()``, or given at build time
    (tests give one; anything with ``measure(frames, batch_size) -> Measurements`` will do)."""

    def __init__(self, config: WorldMetricConfig, measurer=None):
        self.config = config
        self.measurer = measurer
        self.report = None  # the measurer's MeasurerReport, once loaded

    def load_measurer(self) -> None:
        if self.measurer is None:
            measurer, self.report = load_or_train_measurer(self.config)
            self.measurer = share(measurer, resolve_device(self.config.device))

    def measure(self, frames: np.ndarray) -> Measurements:
        return self.measurer.measure(frames, self.config.batch_size)


def _truth(metric: str, generated: VideoSample, reference: VideoSample | None, *keys: str) -> list[np.ndarray]:
    """The per-frame truth arrays ``keys`` of the clip that drove ``generated``."""
    for sample in (generated, reference):
        if sample is not None and sample.truth is not None and all(k in sample.truth for k in keys):
            return [np.asarray(sample.truth[k], np.float64) for k in keys]
    raise MemoZooError(f"{metric}: video {generated.id!r} has no truth {', '.join(keys)} (world metrics need "
                       "talking_world's per-frame truth in VideoSample.truth, of the video or of its ground truth)")


class _PerVideoMetric(_Measuring, PerVideoFigures):
    """prepare / reset / compute of the per-video world metrics; ``update`` is each metric's own."""

    name = "world"

    def __init__(self, config: WorldMetricConfig, measurer=None):
        _Measuring.__init__(self, config, measurer)
        PerVideoFigures.__init__(self)

    def prepare(self) -> None:
        self.load_measurer()

    def state(self):
        state = PerVideoFigures.state(self)
        state.extra["report"] = self.report
        return state

    def merge(self, state) -> None:
        PerVideoFigures.merge(self, state)
        if self.report is None:
            self.report = state.extra.get("report")


# ---- world_lip_sync ---------------------------------------------------------------------------------

def lip_sync_figures(measured: np.ndarray, truth: np.ndarray, max_lag: int) -> dict[str, float]:
    """Per-video ``world_lip_sync`` figures from aligned per-frame series (module docstring)."""
    n = min(len(measured), len(truth))
    correlations = lagged_correlations(truth[:n], measured[:n], max_lag)
    lag, r = best_lag(correlations)
    return {"lip_sync_r": pearson(truth[:n], measured[:n]), "lip_sync_best_r": r, "lip_sync_lag": float(lag),
            "lip_sync_frames": float(n)}


class WorldLipSyncMetric(_PerVideoMetric):
    """series: ``mouth_measured``, ``mouth_truth`` (the aligned frames)."""

    name = "world_lip_sync"

    def update(self, generated: VideoSample, reference: VideoSample | None = None) -> None:
        self.prepare()
        check_new_video(self.name, self.per_video, generated.id)
        (truth,) = _truth(self.name, generated, reference, "mouth_open")
        m = self.measure(generated.frames)
        measured = m.mouth_open if self.config.mouth == "open" else m.mouth_area
        n = min(len(measured), len(truth))
        self.record(generated.id, lip_sync_figures(measured, truth, self.config.max_lag),
                    {"mouth_measured": measured[:n], "mouth_truth": truth[:n]})


# ---- world_identity ---------------------------------------------------------------------------------

def identity_figures(similarity: np.ndarray, fps: float, window_seconds: float,
                     window_fraction: float) -> dict[str, float]:
    """Per-video ``world_identity`` figures from the per-frame cosine similarities (module docstring)."""
    first, last, window = end_windows(similarity, fps, window_seconds, window_fraction)
    return {"world_identity": float(similarity.mean()), "world_identity_first": first,
            "world_identity_last": last, "world_identity_drift": first - last, "world_identity_window": float(window)}


class WorldIdentityMetric(_PerVideoMetric):
    """series: ``identity`` (cosine to the reference, per frame)."""

    name = "world_identity"

    def update(self, generated: VideoSample, reference: VideoSample | None = None) -> None:
        self.prepare()
        check_new_video(self.name, self.per_video, generated.id)
        image = reference_image_of(self.name, generated, reference)
        anchor = self.measure(image[None]).identity[0]
        similarity = self.measure(generated.frames).identity @ anchor  # unit vectors: the cosine
        c = self.config
        self.record(generated.id, identity_figures(similarity, generated.fps, c.window_seconds, c.window_fraction),
                    {"identity": similarity})


# ---- world_expression -------------------------------------------------------------------------------

def expression_figures(measured: np.ndarray, emotion: np.ndarray, intensity: np.ndarray, min_intensity: float,
                       labels: int) -> dict[str, float]:
    """Per-video ``world_expression`` figures from aligned per-frame labels (module docstring)."""
    n = min(len(measured), len(emotion), len(intensity))
    strong = intensity[:n] >= min_intensity
    measured, emotion = np.asarray(measured[:n], np.int64)[strong], np.asarray(emotion[:n], np.int64)[strong]
    if not len(emotion):
        return {"world_expression_acc": float("nan"), "world_expression_clip": float("nan"),
                "world_expression_frames": 0.0}
    agree = np.argmax(np.bincount(measured, minlength=labels)) == np.argmax(np.bincount(emotion, minlength=labels))
    return {"world_expression_acc": float(np.mean(measured == emotion)), "world_expression_clip": float(agree),
            "world_expression_frames": float(len(emotion))}


class WorldExpressionMetric(_PerVideoMetric):
    """series: ``expression_measured`` and ``expression_truth`` (spec E4 label index per aligned frame)."""

    name = "world_expression"

    def update(self, generated: VideoSample, reference: VideoSample | None = None) -> None:
        self.prepare()
        check_new_video(self.name, self.per_video, generated.id)
        emotion, intensity = _truth(self.name, generated, reference, "emotion", "intensity")
        m = self.measure(generated.frames)
        measured = m.expression_label
        n = min(len(measured), len(emotion))
        figures = expression_figures(measured, emotion, intensity, self.config.min_intensity, m.expression.shape[1])
        self.record(generated.id, figures, {"expression_measured": measured[:n].astype(np.float64),
                                            "expression_truth": emotion[:n]})


# ---- world_fd ---------------------------------------------------------------------------------------

class WorldFdMetric(FrechetMetric):
    """``world_fd`` (summary and per video), ``frames`` and ``reference_frames``; no series."""

    name = "world_fd"
    unit = "frames"

    def __init__(self, config: WorldFdConfig, measurer=None):
        self.measuring = _Measuring(config, measurer)
        self.config = config
        super().__init__(config.reference_stats, config.per_video_distance)

    def _load(self) -> None:
        self.measuring.load_measurer()

    @property
    def report(self):
        """The measurer's check report, once loaded here or merged from a worker's state."""
        return self.measuring.report

    def state(self):
        state = super().state()
        state.extra["report"] = self.measuring.report
        return state

    def merge(self, state) -> None:
        super().merge(state)
        if self.measuring.report is None:
            self.measuring.report = state.extra.get("report")

    def features(self, sample: VideoSample) -> np.ndarray:
        return self.measuring.measure(sample.frames[::self.config.frame_stride]).features


def build_lip_sync(config: WorldLipSyncConfig, measurer=None) -> WorldLipSyncMetric:
    return WorldLipSyncMetric(config, measurer)


def build_identity(config: WorldIdentityConfig, measurer=None) -> WorldIdentityMetric:
    return WorldIdentityMetric(config, measurer)


def build_expression(config: WorldExpressionConfig, measurer=None) -> WorldExpressionMetric:
    return WorldExpressionMetric(config, measurer)


def build_fd(config: WorldFdConfig, measurer=None) -> WorldFdMetric:
    return WorldFdMetric(config, measurer)
