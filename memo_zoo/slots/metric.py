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


SLOT = Slot(
    name="metric",
    recipe_path="metrics",
    description="evaluation metrics (spec §8)",
    summary="evaluation metric (spec §8)",
    protocol=Metric,
    is_list=True,
)
