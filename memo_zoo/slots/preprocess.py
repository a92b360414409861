"""The ``preprocess`` slot (spec §7): a data-pipeline stage that keeps, transforms or drops a clip.

``ClipRecord`` (``memo_zoo.data.clip``) and ``StageResult`` (``memo_zoo.data.pipeline``) are named
in the annotations below but not imported: the slots sit below the data layer (pyproject,
``[tool.importlinter]``), and the annotations are never evaluated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot

if TYPE_CHECKING:
    from pathlib import Path


@runtime_checkable
class Stage(Protocol):
    """A ``preprocess`` component, built by ``factory(config)``; a recipe lists them in order.

    ``process(clip, out_dir) -> StageResult``: keep the clip (unchanged, or replaced by one or more
    new clip files written under ``out_dir``, the stage's own folder: scene pieces, face crops, ...)
    or drop it with a reason and, when there is one, the measured value ("quality 31.2 < 40").
    ``name`` labels the stage in the pipeline's report. ``memo_zoo.data.pipeline.run_pipeline``
    runs the stages.
    """

    name: str

    def process(self, clip: ClipRecord, out_dir: Path) -> StageResult: ...  # noqa: F821 (module docstring)


SLOT = Slot(
    name="preprocess",
    recipe_path="data.preprocess",
    description="pipeline stages, in order",
    summary="data-pipeline stage that keeps or drops a clip (spec §7)",
    protocol=Stage,
    is_list=True,
)
