"""The one clip record every dataset reader yields (the ``dataset`` slot's protocol, ``ClipDataset``,
is in ``memo_zoo.slots.dataset``).

Readers of different layouts (spec §11) differ only in how they find these fields; everything
downstream (preprocessing, training samples, evaluation) reads ``ClipRecord``s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass(frozen=True)
class ClipRecord:
    """One talking-head clip on disk.

    clip_id:        unique within its dataset (e.g. ``M003/front/angry/level_1/001``).
    video:          the video file (may carry the audio too).
    audio:          a separate audio file, or None when the audio is muxed into ``video``.
    fps, frame_count: as the reader knows them (None = probe the file).
    speaker:        identity label (actor, celebrity id, world identity), None when unknown.
    emotion:        label in the paper's 8 classes (spec E4), None when unlabelled.
    source_emotion: the dataset's own label before mapping (e.g. ``contempt``).
    intensity, view: MEAD-style level (1-3) and camera view, when the dataset has them.
    embeddings:     precomputed features, by kind (``face_emb``, ``audio_emb``, ``audio_emotion``,
                    ``vocals``, ...), as MEMO's and Hallo's layouts ship them.
    truth:          per-frame ground truth sidecar (``talking_world`` only).
    """

    clip_id: str
    video: Path
    audio: Path | None = None
    fps: float | None = None
    frame_count: int | None = None
    speaker: str | None = None
    emotion: str | None = None
    source_emotion: str | None = None
    intensity: int | None = None
    view: str | None = None
    embeddings: dict[str, Path] = field(default_factory=dict)
    truth: Path | None = None

    @property
    def audio_source(self) -> Path:
        """Where to read the audio from: the separate file, else the video's own track."""
        return self.audio if self.audio is not None else self.video


@dataclass(frozen=True)
class SkippedClip:
    """A clip a reader or a pipeline stage left out, and why (issue 4: every drop is reported)."""

    path: str
    stage: str
    reason: str


def iter_files(root: Path, pattern: str) -> Iterator[Path]:
    """Files under ``root`` matching a glob ``pattern``, in a stable (sorted) order."""
    return iter(sorted(p for p in root.glob(pattern) if p.is_file()))
