"""The ``metric`` slot (spec §8, issue 7): what every evaluation metric looks like to the runner.

``VideoSample`` (one video as the metrics see it) and ``MetricResult`` live with the evaluation
runner in ``memo_zoo.eval.protocol``, beside the helpers metrics share: a ``VideoSample`` reads
video files through ``memo_zoo.data``, a layer above the slots, so they are named in the
annotations below but not imported (the annotations are never evaluated).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot


@runtime_checkable
class Metric(Protocol):
    """An evaluation metric. ``name`` prefixes nothing: the figures' keys are its own.

    A metric is built from its recipe options by its ``factory(config)`` and then used as::

        metric.prepare()                       # load its networks now; MissingWeightsError if a file is absent,
                                               # MemoZooError naming a file that is there but cannot be loaded
        for generated, reference in pairs:
            metric.update(generated, reference)  # per-video values accumulate
        result = metric.compute()              # MetricResult(per_video, summary)
        metric.reset()                         # ready for the next set of videos (e.g. the next variant)

    Building a metric loads nothing: the networks are loaded by ``prepare()`` (``update`` calls it
    too), so that a recipe listing every metric validates and builds on a machine without their
    weights, and the runner can call ``prepare()`` on each metric first, report the ones whose
    ``MissingWeightsError`` names a missing file, and go on with the others. The experiment task
    calls ``prepare()`` on every metric before it trains anything, so that a corrupt file fails in
    seconds instead of after a training.
    """

    name: str

    def prepare(self) -> None:
        """Load the networks now (idempotent); raises MissingWeightsError naming a missing file and
        MemoZooError naming one that cannot be loaded (corrupt, another network's)."""

    def update(self, generated: VideoSample, reference: VideoSample | None = None) -> None:  # noqa: F821
        """Measure one generated video (and take in its ground truth, where the metric uses one)."""

    def compute(self) -> MetricResult:  # noqa: F821
        """Figures per video and for the whole set seen since the last reset."""

    def reset(self) -> None:
        """Forget every video seen (networks stay loaded)."""


@runtime_checkable
class ShardableMetric(Metric, Protocol):
    """A metric that can measure a set of videos split over workers (issue 21; ``memo_zoo.eval.sharded``).

    Optional: a metric without these methods still runs in one process; asked to run on workers it
    is refused with an error naming it. The contract, on each worker, for its contiguous shard::

        metric.prepare(); metric.reset()
        metric.begin_shard()                   # keep what state() hands back (may cost memory)
        for generated, reference in shard:
            metric.update(generated, reference)
        state = metric.state()                 # picklable: crosses the wire to the driver

    and on the driver, on a metric built from the same config (not prepared: no network loaded)::

        metric.reset()
        for state in states:                   # the shards' order, which is the videos' order
            metric.merge(state)
        result = metric.compute()              # the figures one process gives on the whole set

    A state holds per-video contributions (figures, series, feature rows), never a running
    reduction that the driver would have to combine differently from one process: ``merge``
    replays them in video order, so the figures are the same to the last bit. ``merge`` refuses a
    video it already holds.
    """

    def begin_shard(self) -> None:
        """Start keeping what ``state()`` hands back for the videos measured from now on (called
        after ``reset()``); a metric whose figures are its state anyway does nothing."""

    def state(self) -> object:
        """Everything the videos measured since ``reset()`` contributed, picklable, in their order."""

    def merge(self, state: object) -> None:
        """Take in another shard's ``state()`` as if its videos had been measured here, after these."""


SLOT = Slot(
    name="metric",
    recipe_path="metrics",
    description="evaluation metrics (spec §8)",
    summary="evaluation metric (spec §8)",
    protocol=Metric,
    is_list=True,
)
