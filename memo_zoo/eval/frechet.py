"""Frechet distance between Gaussians fitted to features: the math of FID, FVD and E-FID (spec §8).

    d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))

as in Heusel et al. (2017) and the reference FID code: ``(S1 S2)^(1/2)`` by
``scipy.linalg.sqrtm``; when the product is singular enough that the square root is not finite,
both covariances get ``eps`` on their diagonal and the root is taken again; a root whose
imaginary part is numerical noise (the product's eigenvalues are real and >= 0 in exact
arithmetic, as it is similar to S1^1/2 S2 S1^1/2) keeps its real part, and a large imaginary part
is an error (covariances that are not positive semi-definite).

Written here rather than taken from torchmetrics: torchmetrics' FID keeps its statistics inside
one metric object and has no way to take precomputed reference statistics (.npz) or to give a
distance per video, and FVD and E-FID need the same math on other features. In the core (next to
the metric protocol it implements) because metrics of both component packages share it: FID, FVD
and E-FID (``memo_zoo_eval``) and talking_world's ``world_fd`` (``memo_zoo_plugins``), which
never import each other.

``GaussianStats`` accumulates the mean and covariance of a stream of feature batches in float64
with Chan et al.'s pairwise update (batch mean and centred scatter merged into the running ones),
which does not lose the covariance to cancellation as sum(x x^T) - n mu mu^T does when features
have a large mean. The covariance is the unbiased one (n - 1), as ``np.cov(rowvar=False)`` in the
reference FID code.

Sharded over workers (``ShardableMetric``, issue 21), a ``FrechetMetric`` hands back each video's
feature rows (``FrechetVideo``; float32 when that loses nothing, as for networks that compute in
float32) and the driver replays them into its ``GaussianStats`` in video order: the very updates
one process makes, so the distance is the same to the last bit. Merging the workers' running
statistics instead (``GaussianStats.merge``) would be exact only up to rounding and would ship a
D x D scatter; rows cost (frames x D) per video and only while a shard is gathered.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.linalg

from memo_zoo.errors import MemoZooError
from memo_zoo.weights import resolve_weights
from memo_zoo.eval.protocol import MetricResult, VideoSample, check_new_video, checked_state


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (module docstring)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs "
                         f"{sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(mu1)) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # tolerance of the reference FID code: the diagonal's imaginary part must be noise
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise MemoZooError(f"Frechet distance: (S1 S2)^1/2 has an imaginary component "
                               f"{np.abs(covmean.imag).max():.3g}; a covariance is not positive semi-definite")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # a singular product (fewer samples than dimensions) is expected and handled by the caller
        warnings.simplefilter("ignore")
        return scipy.linalg.sqrtm(matrix)


class GaussianStats:
    """Running mean and covariance of feature vectors (D,), accumulated in float64."""

    def __init__(self, dim: int | None = None):
        self.dim = dim
        self.count = 0
        self.count_known = True  # False for statistics read from a file that does not say its count
        self._mean: np.ndarray | None = None
        self._scatter: np.ndarray | None = None  # sum of (x - mean)(x - mean)^T

    def update(self, features: np.ndarray) -> "GaussianStats":
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be (N, D), got shape {x.shape}")
        if len(x) == 0:
            return self
        if self.dim is None:
            self.dim = x.shape[1]
        if x.shape[1] != self.dim:
            raise ValueError(f"features have {x.shape[1]} dimensions, these statistics {self.dim}")
        mean = x.mean(axis=0)
        centred = x - mean
        self._merge(len(x), mean, centred.T @ centred)
        return self

    def merge(self, other: "GaussianStats") -> "GaussianStats":
        if other.count:
            if self.dim is not None and other.dim != self.dim:
                raise ValueError(f"cannot merge statistics of {other.dim} and {self.dim} dimensions")
            self.dim = other.dim
            self._merge(other.count, other._mean, other._scatter)
        return self

    def _merge(self, n: int, mean: np.ndarray, scatter: np.ndarray) -> None:
        if self.count == 0:
            self.count, self._mean, self._scatter = n, mean.copy(), scatter.copy()
            return
        total = self.count + n
        delta = mean - self._mean
        self._scatter = self._scatter + scatter + np.outer(delta, delta) * (self.count * n / total)
        self._mean = self._mean + delta * (n / total)
        self.count = total

    @property
    def mean(self) -> np.ndarray:
        if not self.count:
            raise ValueError("no features accumulated")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, have {self.count}")
        return self._scatter / (self.count - 1)

    def distance(self, other: "GaussianStats") -> float:
        return frechet_distance(self.mean, self.cov, other.mean, other.cov)

    def save(self, path: str | Path) -> Path:
        """Write ``mu``, ``sigma`` (the reference FID code's .npz keys) and ``count``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:  # a file handle: np.savez would append .npz to other suffixes
            np.savez(handle, mu=self.mean, sigma=self.cov, count=np.int64(self.count))
        return path

    @classmethod
    def from_moments(cls, mu: np.ndarray, sigma: np.ndarray, count: int) -> "GaussianStats":
        stats = cls(len(mu))
        stats.count = int(count)
        stats._mean = np.asarray(mu, np.float64).copy()
        stats._scatter = np.asarray(sigma, np.float64) * (count - 1)
        return stats

    @classmethod
    def load(cls, reference: str | Path, what: str) -> "GaussianStats":
        """Statistics from an .npz with ``mu`` (D,) and ``sigma`` (D, D), e.g. written by ``save`` or by
        pytorch-fid's ``--save-stats``; a bare name is looked up in MEMO_ZOO_WEIGHTS_DIR."""
        path = resolve_weights(reference, what)
        try:
            with np.load(path) as data:
                mu, sigma = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
                # files from other tools carry no count; 2 makes the scatter round-trip to sigma
                count = int(data["count"]) if "count" in data.files else 2
                files = data.files
        except (OSError, ValueError, KeyError) as error:
            raise MemoZooError(f"{what}: {path} is not an .npz with arrays 'mu' and 'sigma' ({error})") from None
        if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
            raise MemoZooError(f"{what}: {path} has mu {mu.shape} and sigma {sigma.shape}; expected (D,) and (D, D)")
        stats = cls.from_moments(mu, sigma, max(count, 2))
        stats.count_known = "count" in files
        return stats


@dataclass
class FrechetVideo:
    """One video's contribution to a Frechet metric: its feature rows, its ground truth's (None
    when a fixed reference distribution was used) and its per-video figures."""

    id: str
    features: np.ndarray
    reference: np.ndarray | None
    entry: dict[str, float]


@dataclass
class FrechetState:
    """A shard's state of a Frechet metric (``ShardableMetric``): its videos in measuring order."""

    videos: list[FrechetVideo]
    extra: dict = field(default_factory=dict)


def compact_rows(rows: np.ndarray) -> np.ndarray:
    """float32 when that holds the rows exactly (features of float32 networks), else float64."""
    narrow = rows.astype(np.float32)
    return narrow if np.array_equal(narrow, rows) else rows


class FrechetMetric(ABC):
    """Shared body of the Frechet metrics (FID, FVD, E-FID, world_fd): generated features vs reference features.

    Subclasses set ``name`` (also the summary key), ``unit`` (what a feature vector stands for:
    frames, clips) and implement ``_load()`` (networks; MissingWeightsError) and ``features(sample)``
    -> (N, D). The reference distribution is, in this order: statistics given to ``use_reference``,
    the config's ``reference_stats`` .npz, else the features of the ground-truth videos passed to
    ``update``. ``per_video_distance`` adds each video's own distance (its features vs its ground
    truth's, or vs the fixed reference statistics); with fewer feature vectors than dimensions the
    covariance is singular and such a figure is noisy, so it is off by default.
    """

    name = "frechet"
    unit = "frames"
    stats_what = "reference statistics (.npz with mu, sigma)"

    def __init__(self, reference_stats: str | None, per_video_distance: bool):
        self.reference_stats = reference_stats
        self.per_video_distance = per_video_distance
        self._fixed: GaussianStats | None = None
        self._prepared = False
        self._reset_state()

    # ---- the Metric protocol ------------------------------------------------------------------
    def prepare(self) -> None:
        if self._prepared:
            return
        self._load_reference_stats()
        self._load()
        self._prepared = True

    def _load_reference_stats(self) -> None:
        if self._fixed is None and self.reference_stats:
            self._fixed = GaussianStats.load(self.reference_stats, f"{self.name} {self.stats_what}")

    def update(self, generated: VideoSample, reference: VideoSample | None = None) -> None:
        self.prepare()
        check_new_video(self.name, self.per_video, generated.id)
        features = self._features_checked(generated)
        # both videos are measured before either enters the statistics, so a failure leaves them unchanged
        reference_features = None
        if self._fixed is None and reference is not None:
            reference_features = self._features_checked(reference)
        self.generated.update(features)
        entry = {self.unit: float(len(features))}
        own_reference = None
        if reference_features is not None:
            self.reference.update(reference_features)
            if self.per_video_distance:  # a 2048-d scatter per video is not free: only when asked for
                own_reference = GaussianStats().update(reference_features)
            entry[f"reference_{self.unit}"] = float(len(reference_features))
        if self.per_video_distance:
            against = self._fixed if self._fixed is not None else own_reference
            if against is not None and against.count >= 2 and len(features) >= 2:
                entry[self.name] = GaussianStats().update(features).distance(against)
            else:
                entry[self.name] = float("nan")
        self.per_video[generated.id] = entry
        if self._kept is not None:
            kept_reference = None if reference_features is None else compact_rows(reference_features)
            self._kept.append(FrechetVideo(generated.id, compact_rows(features), kept_reference, dict(entry)))

    def compute(self) -> MetricResult:
        reference = self.reference_statistics()
        if self.generated.count < 2:
            raise MemoZooError(f"{self.name}: {self.generated.count} generated {self.unit} measured; a Frechet "
                               f"distance needs at least 2")
        if reference.count < 2:
            raise MemoZooError(f"{self.name}: no reference distribution: pass the ground-truth videos to update(), "
                               f"or set reference_stats to an .npz with mu and sigma")
        summary = {self.name: self.generated.distance(reference), self.unit: float(self.generated.count)}
        if reference.count_known:
            summary[f"reference_{self.unit}"] = float(reference.count)
        return MetricResult(per_video={k: dict(v) for k, v in self.per_video.items()}, summary=summary)

    def reset(self) -> None:
        self._reset_state()

    # ---- sharded over workers (ShardableMetric; module docstring) -------------------------------
    def begin_shard(self) -> None:
        """Keep every video's feature rows from now on, for ``state()`` (one process does not)."""
        self._kept = []

    def state(self) -> FrechetState:
        if self._kept is None:
            raise MemoZooError(f"{self.name}: state() needs begin_shard() before the shard's videos (the feature "
                               "rows are kept only from then on)")
        return FrechetState(videos=list(self._kept))

    def merge(self, state: object) -> None:
        """Replay a shard's rows into the statistics, in its order (module docstring). The fixed
        reference (``reference_stats``) is read here too: compute() needs it, not the network."""
        checked_state(self.name, state, FrechetState, self.per_video, [v.id for v in getattr(state, "videos", [])])
        self._load_reference_stats()
        for video in state.videos:
            self.generated.update(video.features)
            if video.reference is not None:
                self.reference.update(video.reference)
            self.per_video[video.id] = dict(video.entry)
            if self._kept is not None:
                self._kept.append(video)

    # ---- reference statistics -----------------------------------------------------------------
    def reference_statistics(self) -> GaussianStats:
        """The reference distribution compute() uses now (see the class docstring for the order)."""
        return self._fixed if self._fixed is not None else self.reference

    def use_reference(self, stats: GaussianStats) -> None:
        """Fix the reference distribution (e.g. the ground truth measured once for every variant)."""
        self._fixed = stats

    def save_reference_stats(self, path: str | Path) -> Path:
        """Write the reference distribution as .npz (mu, sigma), for ``reference_stats`` next time."""
        return self.reference_statistics().save(path)

    # ---- for subclasses -------------------------------------------------------------------------
    @abstractmethod
    def _load(self) -> None:
        """Load the feature network; raise MissingWeightsError when its file is absent."""

    @abstractmethod
    def features(self, sample: VideoSample) -> np.ndarray:
        """(N, D) feature vectors of one video."""

    def _features_checked(self, sample: VideoSample) -> np.ndarray:
        features = np.asarray(self.features(sample), dtype=np.float64)
        if features.ndim != 2:
            raise MemoZooError(f"{self.name}: features of video {sample.id!r} have shape {features.shape}, "
                               "expected (N, D)")
        if not np.isfinite(features).all():
            raise MemoZooError(f"{self.name}: features of video {sample.id!r} are not finite")
        return features

    def _reset_state(self) -> None:
        self.generated = GaussianStats()
        self.reference = GaussianStats()
        self.per_video: dict[str, dict[str, float]] = {}
        self._kept: list[FrechetVideo] | None = None  # each video's rows, between begin_shard() and reset()
