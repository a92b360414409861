"""``memo_layout``: the layout MEMO's released training code reads (spec §11, "MEMO").

    <root>/data/video/<stem>.mp4                      clips, audio muxed in
    <root>/data/embedding/audio_emb/<stem>.pt         per-frame audio features
    <root>/data/embedding/audio_emotion/<stem>.pt     per-frame emotion of the audio
    <root>/data/embedding/face_emb/<stem>.pt          the reference face embedding
    <root>/data/embedding/vocals/<stem>.pt|.wav       separated vocals (optional)
    <root>/metadata.jsonl                             one JSON object a line: video, face_emb,
                                                      audio_emb, audio_emotion (paths relative
                                                      to the root, or absolute)

Tolerated variations: ``metadata.jsonl`` under ``data/`` instead of the root; the root given as
the ``data`` folder itself; paths relative to the metadata file's folder; a line without some
embedding key (its conventional ``<kind>/<stem>.pt`` is used). Without any metadata file the
``data/video`` folder is scanned and embeddings are matched by stem.

Spec §11: "audio embedding frame count must equal the video's" -- checked by loading the
``audio_emb`` tensor (``torch.load(weights_only=True)``, memory-mapped so only the header is
read); a mismatch skips the clip with both counts in the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import torch

from memo_zoo.data import media
from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.errors import MemoZooError
from memo_zoo_plugins.datasets.readers.common import (
    LABEL_TABLES, LayoutReader, Skip, map_emotion, resolve, sorted_files,
)
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.datasets.readers.configs import DEFAULT_METADATA, EMBEDDING_KINDS, MemoLayoutConfig


def embedding_frames(value: Any) -> int | None:
    """Frames in a loaded audio embedding: a (frames, ...) tensor, a list of per-frame tensors, or
    a dict holding one of those (the key names vary between preprocessing scripts)."""
    if isinstance(value, torch.Tensor):
        return int(value.shape[0]) if value.dim() else None
    if isinstance(value, dict):
        for key in ("audio_emb", "emb", "embedding", "features"):
            if key in value:
                return embedding_frames(value[key])
        tensors = [v for v in value.values() if isinstance(v, torch.Tensor)]
        return embedding_frames(tensors[0]) if len(tensors) == 1 else None
    if isinstance(value, (list, tuple)) and value:
        return len(value)
    return None


def load_embedding(path: Path) -> Any:
    """``torch.load`` restricted to tensors and containers (no code runs from a data file)."""
    try:
        # mmap reads only what is touched (the shape), not the whole feature tensor.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        # Files saved with the legacy (non-zip) format cannot be memory-mapped.
        return torch.load(path, map_location="cpu", weights_only=True)


class MemoLayoutDataset(LayoutReader):
    name = "memo_layout"
    expected = ("data/video/*.mp4, data/embedding/{audio_emb,audio_emotion,face_emb,vocals}/<stem>.pt and "
                "metadata.jsonl with keys video, face_emb, audio_emb, audio_emotion")

    def __init__(self, config: MemoLayoutConfig):
        super().__init__(config)
        self.config: MemoLayoutConfig = config

    def _find(self, root: Path) -> Iterator[ClipRecord | SkippedClip]:
        # The root may be the folder that holds data/, or data/ itself.
        data = root / "data" if (root / "data" / "video").is_dir() or (root / "data" / "embedding").is_dir() else root
        metadata = resolve(self.config.metadata, root, data)
        if metadata.is_file():
            yield from self._from_metadata(root, data, metadata)
        elif self.config.metadata != DEFAULT_METADATA:
            raise MemoZooError(f"metadata file {metadata} (option metadata of dataset root {root}) does not exist")
        elif (data / "video").is_dir():
            yield from self._from_folders(data)
        else:
            raise MemoZooError(f"dataset root {root} does not look like the memo_layout layout: neither "
                               f"{metadata} nor {data / 'video'} exists; expected {self.expected}")

    def _conventional(self, data: Path, kind: str, stem: str) -> Path | None:
        folder = data / "embedding" / kind
        suffixes = (".pt", ".wav") if kind == "vocals" else (".pt",)
        return next((folder / f"{stem}{s}" for s in suffixes if (folder / f"{stem}{s}").is_file()), None)

    def _record(self, video: Path, embeddings: dict[str, Path], missing: dict[str, Path],
                extra: dict[str, Any]) -> ClipRecord | SkippedClip:
        absent = [kind for kind in self.config.required_embeddings if kind not in embeddings]
        if absent:
            where = ", ".join(f"{kind} ({missing[kind]})" if kind in missing else kind for kind in absent)
            return self.skip(video, f"missing required embedding(s): {where}")
        emotion = extra.get("emotion") if isinstance(extra.get("emotion"), str) else None
        speaker = extra.get("speaker") if isinstance(extra.get("speaker"), str) else None
        return ClipRecord(clip_id=video.stem, video=video, speaker=speaker,
                          emotion=map_emotion(emotion, LABEL_TABLES["generic"]), source_emotion=emotion,
                          embeddings=dict(sorted(embeddings.items())))

    def _from_metadata(self, root: Path, data: Path, metadata: Path) -> Iterator[ClipRecord | SkippedClip]:
        try:
            lines = metadata.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise MemoZooError(f"metadata file {metadata} cannot be read: {error}") from None
        bases = (root, metadata.parent, data)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{metadata}:{number}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                yield self.skip(where, f"line is not valid JSON ({error.msg})")
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("video"), str):
                yield self.skip(where, "line has no 'video' path")
                continue
            video = resolve(entry["video"], *bases)
            embeddings: dict[str, Path] = {}
            missing: dict[str, Path] = {}
            for kind in EMBEDDING_KINDS:
                if isinstance(entry.get(kind), str):
                    path = resolve(entry[kind], *bases)
                    if path.is_file():
                        embeddings[kind] = path
                    else:
                        missing[kind] = path
                elif (found := self._conventional(data, kind, video.stem)) is not None:
                    embeddings[kind] = found
            yield self._record(video, embeddings, missing, entry)

    def _from_folders(self, data: Path) -> Iterator[ClipRecord | SkippedClip]:
        for video in sorted_files(data / "video", "*.mp4"):
            embeddings = {kind: path for kind in EMBEDDING_KINDS
                          if (path := self._conventional(data, kind, video.stem)) is not None}
            yield self._record(video, embeddings, {}, {})

    def _check(self, record: ClipRecord) -> ClipRecord:
        path = record.embeddings.get("audio_emb")
        if not self.config.check_audio_frames or path is None:
            return record
        try:
            value = load_embedding(path)
        except Exception as error:  # unpickling raises many types; any of them means "unusable file"
            raise Skip(path, f"audio embedding cannot be loaded ({type(error).__name__}: {error})") from None
        frames = embedding_frames(value)
        if frames is None:
            raise Skip(path, f"cannot tell the frame count of audio embedding {path}: expected a tensor shaped "
                             "(frames, ...)")
        video_frames = record.frame_count if record.frame_count is not None else media.probe(record.video).frame_count
        if video_frames is None:
            raise Skip(record.video, "the video's frame count is unknown, so its audio embedding cannot be checked "
                                     "(check_audio_frames)")
        if abs(frames - video_frames) > self.config.frame_tolerance:
            raise Skip(path, f"audio embedding {path} has {frames} frames but video {record.video} has "
                             f"{video_frames}; spec §11 requires equal counts (frame_tolerance="
                             f"{self.config.frame_tolerance})")
        return record


def build(config: MemoLayoutConfig) -> MemoLayoutDataset:
    return MemoLayoutDataset(config)
