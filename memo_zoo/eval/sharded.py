"""Evaluation sharded over Ray workers (issue 21): the figures one process gives, measured by N.

``evaluate_sharded(metrics, videos, options)`` (what ``evaluate(..., workers=N)`` calls):

1. Every metric must follow ``memo_zoo.slots.metric.ShardableMetric`` (``begin_shard`` / ``state``
   / ``merge``); one that does not is refused by name before anything starts. Ray must be
   installed (the optional extra ``memo-zoo[ray]``).
2. The videos are cut into ``options.workers`` contiguous shards (sizes differ by at most one).
   Items are decoded pairs or loaders (``memo_zoo.eval.pairs.FilePair``): a loader crosses the wire
   as paths and small arrays, and the worker decodes the videos itself, one at a time.
3. One Ray actor per shard receives the metric objects as built (pickled: a config, no network
   yet), ``prepare()``s them there, and measures its shard one video per call. Calls from one
   caller run on an actor in the order they were made, so each shard is measured in video order,
   and the driver's bar moves per video.
4. Each actor hands back every metric's ``state()``; the driver merges them in shard order into
   its own metric objects (not prepared: no network is loaded here) and computes. The states are
   per-video contributions replayed in video order, so the figures are those of one process, bit
   for bit, as long as the networks give the same features in both (see docs: CPU kernels may
   pick another summation order for another thread count).

A metric whose weights are missing on a worker (``MissingWeightsError``) is skipped as in one
process (``Evaluation.skipped`` and a warning); a metric skipped on any worker is skipped as a
whole, since figures over part of the videos would read as the whole set's. An error raised on a
worker is raised here as itself (a ``MemoZooError`` keeps its one-line message).

The cluster: ``options.address``, else ``$RAY_ADDRESS``, else a local cluster on 127.0.0.1 without
the dashboard, with ``workers x cpus_per_worker`` CPUs, started once and kept for this process
(Ray shuts it down at exit). An already initialised Ray (``ray.init`` by the caller) is used as it
is. Workers read ``MEMO_ZOO_*`` settings (weights folder, cache) from their own environment: a
local cluster inherits this process's at start; on a remote cluster set them where the workers run.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterator, Sequence

from memo_zoo.data.ray_cluster import check_reachable, start_local_cluster
from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.eval.eval_options import RAY_INSTALL_HINT, EvalOptions
from memo_zoo.eval.pairs import PairItem, load_pair
from memo_zoo.eval.runner import Evaluation, skip_metric
from memo_zoo.progress import progress
from memo_zoo.slots.metric import Metric, ShardableMetric


def shard_bounds(count: int, shards: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of ``min(shards, count)`` contiguous shards covering ``count`` items in order,
    sizes differing by at most one (the first ones the larger)."""
    shards = max(1, min(shards, count))
    size, extra = divmod(count, shards)
    bounds, start = [], 0
    for index in range(shards):
        stop = start + size + (1 if index < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def check_shardable(metrics: dict[str, Metric]) -> None:
    """Refuse, by name, the metrics that cannot hand back a state (third-party metrics written before
    issue 21 run in one process only)."""
    refused = [f"{name} ({type(metric).__module__}.{type(metric).__qualname__})"
               for name, metric in metrics.items() if not isinstance(metric, ShardableMetric)]
    if refused:
        raise MemoZooError(f"metric {', '.join(refused)} cannot be evaluated on several workers: it has no "
                           "begin_shard() / state() / merge() (memo_zoo.slots.metric.ShardableMetric); evaluate "
                           "with workers 1, or give the metric those methods")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MemoZooError(f"evaluating on several workers needs Ray: {RAY_INSTALL_HINT} (or evaluate with "
                           "workers 1)") from None
    return ray


def connect(options: EvalOptions) -> Any:
    """Ray, initialised on the cluster ``options`` name (module docstring)."""
    ray = import_ray()
    if not ray.is_initialized():
        address = options.address or os.environ.get("RAY_ADDRESS") or None
        if address:
            origin = "the evaluation's address (task.evaluation.address or --address)" if options.address else "the RAY_ADDRESS environment variable"
            check_reachable(address, origin, timeout=10.0)
        try:
            if address:
                ray.init(address=address)
            else:
                # The data pipeline's private cluster: every server on 127.0.0.1 only, no dashboard
                # (a plain ray.init swaps the loopback for the routable address and listens on all).
                start_local_cluster(ray, num_cpus=max(1, math.ceil(options.workers * options.cpus_per_worker)),
                                    num_gpus=None)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            raise MemoZooError(f"evaluation: cannot start or reach {where}: {error}") from None
    total = ray.cluster_resources()
    for resource, each in (("CPU", options.cpus_per_worker), ("GPU", options.gpus_per_worker)):
        # every actor holds its share until the end: more than the cluster has would wait forever
        need = each * options.workers
        if need and total.get(resource, 0) < need:
            raise MemoZooError(f"evaluation: {options.workers} workers x {each} {resource} need {need:g} {resource}s; "
                               f"the Ray cluster has {total.get(resource, 0):g} (fewer workers, or "
                               f"cpus_per_worker / gpus_per_worker)")
    return ray


class ShardWorker:
    """A Ray actor measuring one shard with its own copies of the metrics (module docstring, 3)."""

    def __init__(self, metrics: dict[str, ShardableMetric]):
        self.metrics = metrics
        self.ready: dict[str, ShardableMetric] = {}

    def start(self) -> dict[str, str]:
        """Prepare every metric here; the ones whose weights are missing, with the message."""
        skipped = {}
        for name, metric in self.metrics.items():
            try:
                metric.prepare()
            except MissingWeightsError as error:
                skipped[name] = str(error)
                continue
            metric.reset()
            metric.begin_shard()
            self.ready[name] = metric
        return skipped

    def measure(self, item: PairItem) -> None:
        generated, reference = load_pair(item)
        for metric in self.ready.values():
            metric.update(generated, reference)

    def finish(self) -> dict[str, object]:
        return {name: metric.state() for name, metric in self.ready.items()}


def evaluate_sharded(metrics: dict[str, Metric], videos: Sequence[PairItem] | Callable[[], Sequence[PairItem]],
                     options: EvalOptions, show_progress: bool = True) -> Evaluation:
    """Measure ``videos`` with every metric on ``options.workers`` Ray workers (module docstring)."""
    check_shardable(metrics)
    items = list(videos() if callable(videos) else videos)
    outcome = Evaluation()
    if not items:
        return outcome
    ray = connect(options)
    actor_class = ray.remote(num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker)(ShardWorker)
    shared = ray.put(metrics)  # pickled once, unpickled by each worker into its own copies
    bounds = shard_bounds(len(items), options.workers)
    actors = [actor_class.remote(shared) for _ in bounds]
    try:
        skipped: dict[str, str] = {}
        for found in _get(ray, [actor.start.remote() for actor in actors]):
            for name, message in found.items():
                skipped.setdefault(name, message)
        measured = [actor.measure.remote(item) for actor, (start, stop) in zip(actors, bounds)
                    for item in items[start:stop]]
        for _ in _bar(_as_completed(ray, measured), len(measured), show_progress):
            pass
        states = _get(ray, [actor.finish.remote() for actor in actors])
    finally:
        for actor in actors:  # free the workers' CPUs, GPUs and memory now, not at the cluster's end
            ray.kill(actor)
    for name in metrics:
        if name in skipped:
            skip_metric(outcome, name, skipped[name])
    for name, metric in metrics.items():
        if name in skipped:
            continue
        metric.reset()
        for state in states:  # shard order = video order
            metric.merge(state[name])
        outcome.results[name] = metric.compute()
    return outcome


def _as_completed(ray: Any, refs: list[Any]) -> Iterator[None]:
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        _get(ray, done)
        yield None


def _bar(items: Iterator[None], total: int, show: bool) -> Iterator[None]:
    return iter(progress(items, "evaluate", total=total, unit="video")) if show else items


def _get(ray: Any, refs: list[Any]) -> list[Any]:
    """``ray.get``, with a worker's exception raised as itself (its message, not Ray's wrapper)."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise
    except ray.exceptions.RayActorError as error:
        raise MemoZooError(f"evaluation: a worker died ({error}); out of memory? fewer workers per machine, or "
                           "more memory per worker") from None
