"""The evaluation runner: every metric of a recipe over a set of generated videos (spec §8, issue 7).

``evaluate(metrics, videos)`` prepares each metric first: one whose weights are missing
(``MissingWeightsError``) is reported in ``Evaluation.skipped`` with the message that names the
file and where to put it, and the others still run. Videos are decoded one at a time (``videos``
yields ``(generated, reference)`` pairs lazily), every remaining metric measures the video, and
the video is dropped before the next one, so memory holds one video however long the set is.
An item of ``videos`` may also be a loader that decodes its pair when called
(``memo_zoo.eval.pairs``: ``FilePair``).

``evaluate(..., workers=N)`` with N > 1 splits the videos into N contiguous shards measured on Ray
workers and merges what they hand back on this process (``memo_zoo.eval.sharded``): the same
figures as one process, to the last bit. ``workers=1`` is the path above and needs no Ray.

``log_evaluation(run, evaluation)`` records the outcome in MLflow: the summary figures as metrics,
one row per video as a table (``per_video.json``), the per-frame curves as ``series.npz`` (keys
``<video>/<curve>``) for the report's plots, and the skipped metrics with their reasons
(``skipped_metrics.json`` and a tag).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from memo_zoo.errors import MissingWeightsError
from memo_zoo.progress import progress
from memo_zoo.eval.pairs import PairItem, load_pair
from memo_zoo.eval.protocol import MetricResult
from memo_zoo.slots.metric import Metric

VideoPairs = Iterable[PairItem]
SERIES_FILE = "series.npz"
PER_VIDEO_FILE = "per_video.json"


class MetricSkippedWarning(UserWarning):
    """A metric could not run (its weights are missing); the evaluation goes on without it."""


@dataclass
class Evaluation:
    """What the metrics measured: ``results[metric name]``, and the metrics that could not run."""

    results: dict[str, MetricResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Every metric's summary figures in one mapping (metric keys are distinct by design)."""
        merged: dict[str, float] = {}
        for name, result in self.results.items():
            for key, value in result.summary.items():
                merged[_unique(merged, key, name)] = float(value)
        return merged

    def per_video(self) -> dict[str, dict[str, float]]:
        rows: dict[str, dict[str, float]] = {}
        for name, result in self.results.items():
            for video, figures in result.per_video.items():
                row = rows.setdefault(video, {})
                for key, value in figures.items():
                    row[_unique(row, key, name)] = float(value)
        return rows

    def series(self) -> dict[str, np.ndarray]:
        """Per-frame curves keyed ``<video>/<curve>``."""
        curves: dict[str, np.ndarray] = {}
        for result in self.results.values():
            for video, named in result.series.items():
                for key, values in named.items():
                    curves[f"{video}/{key}"] = np.asarray(values, dtype=np.float64)
        return curves


def skip_metric(outcome: Evaluation, name: str, error: Exception | str) -> None:
    """Record a metric that cannot run (its weights are missing) and warn; the others go on."""
    outcome.skipped[name] = str(error)
    warnings.warn(f"metric {name} skipped: {error}", MetricSkippedWarning, stacklevel=3)


def _unique(existing: dict[str, Any], key: str, metric: str) -> str:
    # Two metrics giving the same key would silently overwrite each other's figure.
    return key if key not in existing else f"{metric}.{key}"


def evaluate(metrics: dict[str, Metric], videos: VideoPairs | Callable[[], VideoPairs], total: int | None = None,
             show_progress: bool = True, workers: int = 1, engine: str = "ray", address: str | None = None,
             cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0) -> Evaluation:
    """Measure ``videos`` with every metric that can run (module docstring); ``workers`` > 1 shards
    them over Ray workers (``engine``, on the cluster at ``address``; ``memo_zoo.eval.sharded``)."""
    if workers > 1:
        from memo_zoo.eval.eval_options import EvalOptions
        from memo_zoo.eval.sharded import evaluate_sharded

        options = EvalOptions(workers=workers, engine=engine, address=address, cpus_per_worker=cpus_per_worker,
                              gpus_per_worker=gpus_per_worker)
        return evaluate_sharded(metrics, videos, options, show_progress=show_progress)
    outcome = Evaluation()
    ready: dict[str, Metric] = {}
    for name, metric in metrics.items():
        try:
            metric.prepare()
        except MissingWeightsError as error:
            skip_metric(outcome, name, error)
            continue
        metric.reset()
        ready[name] = metric
    pairs = videos() if callable(videos) else videos
    measured = 0
    for item in _bar(pairs, total, show_progress):
        generated, reference = load_pair(item)
        for metric in ready.values():
            metric.update(generated, reference)
        measured += 1
    if measured:
        for name, metric in ready.items():
            outcome.results[name] = metric.compute()
    return outcome


def _bar(pairs: VideoPairs, total: int | None, show: bool) -> Iterator[PairItem]:
    return iter(progress(pairs, "evaluate", total=total, unit="video")) if show else iter(pairs)


def log_evaluation(run: Any, evaluation: Evaluation, prefix: str = "", step: int | None = None) -> None:
    """Record an evaluation in an open ``TrackedRun`` (module docstring); ``prefix`` goes before
    each summary metric's name (e.g. ``eval/``, keeping them apart from training curves)."""
    summary = {f"{prefix}{key}": value for key, value in evaluation.summary().items()}
    finite = {k: v for k, v in summary.items() if np.isfinite(v)}
    if finite:
        run.log_metrics(finite, step=step)
    rows = evaluation.per_video()
    if rows:
        columns = sorted({key for row in rows.values() for key in row})
        table: dict[str, list[Any]] = {"video": list(rows)}
        for column in columns:
            table[column] = [rows[video].get(column, float("nan")) for video in rows]
        run.log_table(table, PER_VIDEO_FILE)
    curves = evaluation.series()
    if curves:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **curves)
        log_bytes(run, buffer.getvalue(), SERIES_FILE)
    if evaluation.skipped:
        run.log_dict(evaluation.skipped, "skipped_metrics.json")
        run.set_tags({"memo_zoo.eval.skipped": ", ".join(sorted(evaluation.skipped))})


def log_bytes(run: Any, data: bytes, artifact_file: str) -> None:
    """Log raw bytes as an artifact file (MLflow's client logs files, not buffers)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(artifact_file).name
        path.write_bytes(data)
        parent = str(Path(artifact_file).parent)
        run.log_artifact(path, None if parent == "." else parent)
