"""The ``dataset`` slot (spec §11): talking-head clips in the layouts users already have.

``ClipRecord`` and ``SkippedClip`` (``memo_zoo.data.clip``) are named in the annotations below but
not imported: the slots sit below the data layer (pyproject, ``[tool.importlinter]``), and the
annotations are never evaluated.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot


@runtime_checkable
class ClipDataset(Protocol):
    """What a ``dataset`` component builds: ``factory(config) -> ClipDataset``.

    ``clips()`` lists the usable clips (``memo_zoo.data.clip.ClipRecord``); ``skipped`` lists what
    was found but left out, with the reason (``SkippedClip``), after ``clips()`` has run.
    """

    skipped: list[SkippedClip]  # noqa: F821 (memo_zoo.data.clip; module docstring)

    def clips(self) -> list[ClipRecord]: ...  # noqa: F821


SLOT = Slot(
    name="dataset",
    recipe_path="data.dataset",
    description="dataset reader",
    summary="training / evaluation clips (spec §11)",
    protocol=ClipDataset,
)
