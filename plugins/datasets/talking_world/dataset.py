"""The ``talking_world`` dataset component: generate the synthetic world on first use, list its clips.

memo-zoo's embedded default dataset (issue 4). Its config is the generator's
(:class:`~.world.WorldConfig`) plus the split to list; ``clips()`` generates the world if it is
missing or incomplete (idempotent and resumable, see :func:`~.world.generate`), then returns one
``ClipRecord`` per clip of the split, read from ``metadata.jsonl``: the MEMO layout (spec §11),
with the exact frame count, fps, speaker, dominant emotion (spec E4/E5) and the truth sidecar.
The split is by speaker: test identities never appear in train.
"""

from __future__ import annotations

import json
from pathlib import Path

from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.data.truth import ClipTruth
from memo_zoo.errors import MemoZooError

from .world import generate
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import TalkingWorldConfig, WorldConfig  # noqa: F401

STAGE = "dataset:talking_world"


class TalkingWorld:
    """``ClipDataset`` over a generated talking world."""

    def __init__(self, config: TalkingWorldConfig, progress: bool = True):
        self.config = config
        self.progress = progress
        self.skipped: list[SkippedClip] = []
        self.root: Path | None = None
        self._records: list[ClipRecord] | None = None

    def clips(self) -> list[ClipRecord]:
        """The split's clips sorted by id; the first call generates what is missing."""
        if self._records is not None:
            return list(self._records)
        root = generate(self.config, progress=self.progress)
        self.root = root
        metadata = root / "metadata.jsonl"
        records: list[ClipRecord] = []
        skipped: list[SkippedClip] = []
        for line in metadata.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            if self.config.split != "all" and entry["split"] != self.config.split:
                continue
            video, truth = root / entry["video"], root / entry["truth"]
            # generate() has just checked every file; a file missing now was removed meanwhile.
            absent = [str(p) for p in (video, truth) if not p.is_file()]
            if absent:
                skipped.append(SkippedClip(str(video), STAGE,
                                           f"file(s) removed after generation: {', '.join(absent)}"))
                continue
            records.append(ClipRecord(clip_id=entry["clip_id"], video=video, fps=float(entry["fps"]),
                                      frame_count=int(entry["frames"]), speaker=entry["speaker"],
                                      emotion=entry["emotion"], source_emotion=entry["emotion"], truth=truth))
        if not records and not skipped:
            raise MemoZooError(f"talking_world at {root} has no {self.config.split} clips (identities="
                               f"{self.config.identities}, test_identities={self.config.test_identities}, "
                               f"clips_per_identity={self.config.clips_per_identity}, long_clips={self.config.long_clips})")
        self._records = sorted(records, key=lambda r: r.clip_id)
        self.skipped = skipped
        return list(self._records)

    def frame_truth(self, record: ClipRecord) -> ClipTruth | None:
        """The clip's per-frame truth (``memo_zoo.data.truth.TruthReader``): what an experiment
        measures its videos against and its 'truth' emotion oracle."""
        if record.truth is None:
            return None
        import numpy as np

        from .truth import FRAME_FIELDS, load_truth

        truth = load_truth(record.truth)
        return ClipTruth(frames={name: np.asarray(getattr(truth, name)) for name in FRAME_FIELDS},
                         emotion=truth.emotion_names(), fps=truth.fps)


def build(config: TalkingWorldConfig) -> TalkingWorld:
    return TalkingWorld(config)
