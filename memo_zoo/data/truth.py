"""A clip's per-frame ground truth, as the dataset that wrote it reads it.

``ClipRecord.truth`` names a sidecar file whose format belongs to the dataset that wrote it
(``talking_world``'s ``.npz``). A dataset component that writes one also reads it: it offers
``frame_truth(record)`` (``TruthReader``), and the core (the experiment task's evaluation and its
'truth' emotion oracle) asks the dataset, never the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from memo_zoo.data.clip import ClipRecord


@dataclass(frozen=True)
class ClipTruth:
    """``frames``: name -> one value per video frame (what the metrics receive as
    ``VideoSample.truth``); ``emotion``: the per-frame emotion label; ``fps``: the frames' rate."""

    frames: Mapping[str, np.ndarray]
    emotion: list[str]
    fps: float


@runtime_checkable
class TruthReader(Protocol):
    """A dataset component that can read the truth sidecars of the clips it lists."""

    def frame_truth(self, record: ClipRecord) -> ClipTruth | None:
        """The clip's truth; None when the clip has none."""
