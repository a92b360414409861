"""``celebv_hq``: CelebV-HQ's ``celebvhq_info.json`` plus the processed clips (spec §11).

The info file (CelebV-HQ's README) is ``{"meta_info": {...}, "clips": {clip_id: {"ytb_id",
"duration": {"start_sec", "end_sec"}, "bbox": {...}, "attributes": {"appearance": [...],
"action": [...], "emotion": {"sep_flag": bool, "labels": str | [{"emotion", "start_sec",
"end_sec"}, ...]}}}}}``; the download script saves each clip as ``<clip_id>.mp4`` in a processed
folder. Audio is muxed in.

Emotion: the dataset's labels (neutral, happy, sadness, anger, fear, surprise, contempt, disgust)
are mapped to the paper's classes (spec E4) by ``common.CELEBV_HQ_EMOTIONS``; case and adjective
variants (``Sad``, ``angry``) are accepted and an unknown label becomes ``others`` (spec D2).
``contempt`` -> ``others`` unless ``contempt_as: disgusted``. A clip with several labelled segments
(``sep_flag``) gets, by default, the label covering the most time (like spec E5's "most frequent
frame label"); ``mixed_emotion`` can take the first segment's label or leave it unlabelled. The
label is looked up under ``labels`` and, for re-exports, ``label`` / ``categorical`` / ``emotion``;
a ``sentiment`` (positive / negative) has no class and is not used.

CelebV-HQ has no identity labels; the YouTube id is the closest proxy (clips of one video are
mostly one person), so it is the speaker unless ``speaker_from_ytb_id`` is false.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator


from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.errors import MemoZooError
from memo_zoo_plugins.datasets.readers.common import (
    CELEBV_HQ_EMOTIONS, LayoutReader, contempt_table, map_emotion, resolve, sorted_files,
)
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.datasets.readers.configs import CLIP_DIR_CANDIDATES, CelebVHQConfig

_LABEL_KEYS = ("labels", "label", "categorical", "emotion")


def clip_label(emotion: Any, mixed: str) -> str | None:
    """The dataset's own label of a clip from its ``attributes.emotion`` (see the module docstring)."""
    if isinstance(emotion, str):
        return emotion
    if not isinstance(emotion, dict):
        return None
    value = next((emotion[k] for k in _LABEL_KEYS if k in emotion), None)
    if isinstance(value, str) or value is None:
        return value
    if not isinstance(value, list):
        return None
    segments = []
    for item in value:
        if isinstance(item, str):
            segments.append((item, 0.0))
        elif isinstance(item, dict):
            label = next((item[k] for k in ("emotion", "label", "labels") if isinstance(item.get(k), str)), None)
            if label is not None:
                try:
                    seconds = max(0.0, float(item.get("end_sec", 0)) - float(item.get("start_sec", 0)))
                except (TypeError, ValueError):
                    seconds = 0.0
                segments.append((label, seconds))
    if not segments or mixed == "unlabelled" and len({label for label, _ in segments}) > 1:
        return None
    if mixed == "first":
        return segments[0][0]
    total: dict[str, float] = defaultdict(float)
    for label, seconds in segments:
        total[label] += seconds
    # max keeps the first label among equals, so ties go to the earlier segment.
    return max(total, key=lambda label: total[label])


class CelebVHQDataset(LayoutReader):
    name = "celebv_hq"

    def __init__(self, config: CelebVHQConfig):
        super().__init__(config)
        self.config: CelebVHQConfig = config
        self.table = contempt_table(CELEBV_HQ_EMOTIONS, config.contempt_as)
        self.expected = f"{config.info_file} (with a 'clips' object) and processed <clip_id>.mp4 files"

    def _clip_dir(self, root: Path) -> Path:
        if self.config.clip_dir:
            folder = resolve(self.config.clip_dir, root)
            if not folder.is_dir():
                raise MemoZooError(f"clip folder {folder} (option clip_dir of dataset root {root}) does not exist")
            return folder
        for candidate in CLIP_DIR_CANDIDATES:
            folder = root / candidate
            if folder.is_dir() and any(folder.glob("*.mp4")):
                return folder
        raise MemoZooError(f"dataset root {root} has no processed CelebV-HQ clips: no .mp4 in "
                           f"{', '.join(str(root / c) for c in CLIP_DIR_CANDIDATES)}; set clip_dir")

    def _info(self, root: Path) -> dict[str, Any]:
        path = resolve(self.config.info_file, root)
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MemoZooError(f"dataset root {root} does not look like the celebv_hq layout: {path} not found; "
                               f"expected {self.expected}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MemoZooError(f"CelebV-HQ info file {path} cannot be read as JSON: {error}") from None
        if not isinstance(info, dict) or not isinstance(info.get("clips"), dict):
            raise MemoZooError(f"CelebV-HQ info file {path} has no 'clips' object; expected {self.expected}")
        return info["clips"]

    def _find(self, root: Path) -> Iterator[ClipRecord | SkippedClip]:
        clips = self._info(root)
        folder = self._clip_dir(root)
        files = {video.stem: video for video in sorted_files(folder, "*.mp4")}
        for clip_id in sorted(clips):
            entry = clips[clip_id]
            video = files.pop(clip_id, None)
            if video is None:
                if self.config.report_missing:
                    yield self.skip(folder / f"{clip_id}.mp4", "clip listed in the info file but its file is missing")
                continue
            if not isinstance(entry, dict):
                yield self.skip(video, "its info-file entry is not a JSON object")
                continue
            attributes = entry.get("attributes") if isinstance(entry.get("attributes"), dict) else {}
            raw = clip_label(attributes.get("emotion"), self.config.mixed_emotion)
            ytb_id = entry.get("ytb_id") if isinstance(entry.get("ytb_id"), str) else None
            yield ClipRecord(clip_id=clip_id, video=video, emotion=map_emotion(raw, self.table), source_emotion=raw,
                             speaker=ytb_id if self.config.speaker_from_ytb_id else None)
        for clip_id, video in sorted(files.items()):
            yield self.skip(video, "clip file not listed in the info file (no labels)")


def build(config: CelebVHQConfig) -> CelebVHQDataset:
    return CelebVHQDataset(config)
