"""What every dataset reader of spec §11 shares: options, emotion tables, probing and skip rules.

A reader only knows how to *find* clips in its layout (``LayoutReader._find``); this module turns
what it found into checked ``ClipRecord``s the same way for every layout:

- the root must exist and be a readable folder, and the layout must yield at least one
  candidate, else ``MemoZooError`` names the root and the layout expected (the CLI exits 2);
- a file that cannot be used (missing, empty, corrupt, truncated index, no video stream, no
  audio at all) is *skipped* with the ``MediaError`` reason, never raised (issue 4, "Bad input");
- with separate audio and video, or a muxed audio track, durations that disagree by more than
  ``max_av_offset`` seconds skip the clip, naming both files;
- output is sorted by clip id and clip ids are unique, so runs are reproducible.

Probing reads container headers only (no decoding), so listing a 10k-clip tree costs a header
parse per file; ``probe: false`` skips even that. A file whose header is intact but whose data was
cut off passes the probe and is caught when it is decoded (``media.read_frames`` / ``read_audio``).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import Iterable

import av

from memo_zoo.data import media
from memo_zoo.data.clip import ClipRecord, SkippedClip
from memo_zoo.data.media import MediaError
from memo_zoo.errors import MemoZooError
# The options and the emotion tables have light homes (configs, labels: no PyAV, no torch; issue 17.8) so that
# configs can use them without the media code; imported here so that old import paths still work.
from memo_zoo_plugins.datasets.readers.configs import DEFAULT_MAX_AV_OFFSET, ReaderConfig  # noqa: F401
from memo_zoo_plugins.datasets.readers.labels import (  # noqa: F401
    _SYNONYMS, CELEBV_HQ_EMOTIONS, LABEL_TABLES, MEAD_EMOTIONS, contempt_table, map_emotion, normalise_label,
)


class Skip(Exception):
    """A candidate clip that cannot be used; caught by ``LayoutReader`` and reported, never raised."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


# --- root and path helpers --------------------------------------------------------------------

def check_root(root: Path, expected: str) -> Path:
    """``root`` as a readable folder, else ``MemoZooError`` naming it and the layout expected."""
    root = Path(root).expanduser()
    if not root.exists():
        raise MemoZooError(f"dataset root {root} does not exist; expected {expected}")
    if not root.is_dir():
        raise MemoZooError(f"dataset root {root} is not a folder; expected {expected}")
    if not os.access(root, os.R_OK | os.X_OK):
        raise MemoZooError(f"dataset root {root} cannot be read (permission denied); expected {expected}")
    return root


def resolve(path: str | Path, *bases: Path) -> Path:
    """``path`` if absolute, else the first of ``base / path`` that exists (else the first base's).

    Index files (metadata.jsonl, Hallo's meta JSON) store paths relative to the dataset root, to
    the index's own folder, or absolute; all three are accepted.
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    for base in bases:
        if (base / path).exists():
            return base / path
    return bases[0] / path


def sorted_files(folder: Path, pattern: str, recursive: bool = False) -> list[Path]:
    """Regular files under ``folder`` matching ``pattern``, in a stable order."""
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    return sorted(p for p in found if p.is_file())


# --- probing and length checks ---------------------------------------------------------------

def _muxed_audio_duration(path: Path) -> float | None:
    """Duration of the audio track of a file that also holds video (``media.probe`` gives only the
    longest stream, which hides an audio track shorter than the video)."""
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration is not None else None
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(path, f"cannot be opened as media ({error})") from None


def probe_record(record: ClipRecord, config: ReaderConfig) -> ClipRecord:
    """``record`` with fps / frame_count from the video's header, after the checks of the module
    docstring. Raises ``MediaError`` or ``Skip``; without probing, only checks that the files exist."""
    if not config.probe:
        # A stat per file keeps the promise that a missing file is reported, at no decoding cost.
        for path in (record.video, record.audio):
            if path is not None and not path.is_file():
                raise MediaError(path, "file not found" if not path.exists() else "not a regular file")
        return record
    info = media.probe(record.video)
    if not info.has_video:
        raise MediaError(record.video, "has no video stream")
    if info.frame_count == 0:
        raise MediaError(record.video, "video stream has no frames")
    fps = info.fps or record.fps
    frames = info.frame_count or record.frame_count
    # frames / fps is the time the video is shown; the container's duration may include a
    # longer audio track, which is exactly what the comparison below must not hide.
    video_seconds = frames / fps if frames and fps else info.duration
    audio_seconds: float | None = None
    if record.audio is not None:
        audio_info = media.probe(record.audio)
        if not audio_info.has_audio:
            raise MediaError(record.audio, "has no audio stream")
        audio_seconds = audio_info.duration
    elif info.has_audio:
        if config.max_av_offset is not None:
            audio_seconds = _muxed_audio_duration(record.video)
    elif config.require_audio:
        raise MediaError(record.video, "has no audio track and the clip has no separate audio file")
    if config.max_av_offset is not None and audio_seconds is not None and video_seconds:
        offset = abs(audio_seconds - video_seconds)
        if offset > config.max_av_offset:
            audio_name = record.audio if record.audio is not None else f"the audio track of {record.video}"
            raise Skip(record.video, f"audio {audio_name} lasts {audio_seconds:.3f} s but video {record.video} "
                                      f"lasts {video_seconds:.3f} s; they differ by {offset:.3f} s, more than "
                                      f"max_av_offset={config.max_av_offset} s")
    return replace(record, fps=fps, frame_count=frames)


# --- the reader skeleton ---------------------------------------------------------------------

class LayoutReader(ABC):
    """``ClipDataset`` for one layout: subclasses set ``name`` / ``expected`` and write ``_find``.

    ``_find(root)`` lists candidates in the layout: ``ClipRecord``s (not yet probed) and
    ``SkippedClip``s for entries it recognised but could not use (bad names, missing partner
    files). It raises ``MemoZooError`` when the root is not this layout at all; an empty result
    means the same. ``_check(record)`` may add layout-specific checks (raise ``Skip``).
    """

    name: str = ""
    expected: str = ""

    def __init__(self, config: ReaderConfig):
        self.config = config
        self.skipped: list[SkippedClip] = []
        self._records: list[ClipRecord] | None = None

    @property
    def stage(self) -> str:
        return f"dataset:{self.name}"

    def skip(self, path: str | Path, reason: str) -> SkippedClip:
        return SkippedClip(str(path), self.stage, reason)

    @abstractmethod
    def _find(self, root: Path) -> Iterable[ClipRecord | SkippedClip]:
        """The candidates under ``root`` in a stable order (see the class docstring)."""

    def _check(self, record: ClipRecord) -> ClipRecord:
        return record

    def clips(self) -> list[ClipRecord]:
        """Usable clips sorted by id; the first call scans, later calls return the same list."""
        if self._records is not None:
            return list(self._records)
        root = check_root(self.config.root, self.expected)
        try:
            candidates = list(self._find(root))
        except PermissionError as error:
            raise MemoZooError(f"dataset root {root} cannot be read ({error}); expected {self.expected}") from None
        if not candidates:
            raise MemoZooError(f"dataset root {root} does not look like the {self.name} layout: nothing found; "
                               f"expected {self.expected}")
        skipped: list[SkippedClip] = []
        records: dict[str, ClipRecord] = {}
        for candidate in candidates:
            if isinstance(candidate, SkippedClip):
                skipped.append(candidate)
                continue
            if candidate.clip_id in records:
                skipped.append(self.skip(candidate.video, f"duplicate clip id {candidate.clip_id!r} (already "
                                                          f"given by {records[candidate.clip_id].video})"))
                continue
            try:
                records[candidate.clip_id] = self._check(probe_record(candidate, self.config))
            except MediaError as error:
                skipped.append(self.skip(error.path, error.reason))
            except Skip as error:
                skipped.append(self.skip(error.path, error.reason))
            except av.error.FFmpegError as error:
                # media.probe converts errors on opening; a stream that fails later while its
                # header is read still means one bad file, not a reason to abandon the listing.
                skipped.append(self.skip(candidate.video, f"cannot be read as media ({error})"))
        self._records = [records[key] for key in sorted(records)]
        self.skipped = sorted(skipped, key=lambda s: (s.path, s.reason))
        return list(self._records)
