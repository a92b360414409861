"""Decode-once cache of training clips: uint8 frames and 16 kHz mono audio as memory-mapped .npy.

Training draws many random windows from every clip, epoch after epoch; decoding an MP4 for each
window would dominate a step. ``FrameCache`` decodes a clip once, at the sample rate and frame
size a ``SampleConfig`` asks for, and keeps the result under

    <cache_dir>/frames/<key>/frames.npy   (T, S, S, 3) uint8, RGB, frame i shown at [i/fps, (i+1)/fps)
    <cache_dir>/frames/<key>/audio.npy    (N,) float32 in [-1, 1], mono, sample_rate Hz (spec D3)
    <cache_dir>/frames/<key>/meta.json    what was decoded, from where; written LAST

``key`` hashes the source files' resolved paths, mtimes and byte sizes together with (fps, size,
sample_rate), so an edited file or another resolution gets a fresh entry and a stale one is never
read. Readers open the arrays with ``np.load(mmap_mode="r")``: DataLoader workers then share the
page cache instead of each holding a copy.

Every file is written to a temporary name in the entry's folder and moved into place with
``os.replace``; ``meta.json`` is the commit marker, so an entry interrupted half-way is simply
decoded again, and two processes filling the same entry at once both leave a complete one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memo_zoo.atomic import write_atomically, write_bytes_atomically
from memo_zoo.data import media
from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.media import MediaError
from memo_zoo.settings import get_settings

# Bump when the layout or the decoding changes, so old entries are not mistaken for new ones.
CACHE_VERSION = 1


@dataclass(frozen=True)
class CachedClip:
    """One committed cache entry; small and picklable (the arrays are opened where they are used)."""

    key: str
    directory: Path
    source: str
    fps: float
    size: int
    sample_rate: int
    frame_count: int
    audio_samples: int

    @property
    def frames_path(self) -> Path:
        return self.directory / "frames.npy"

    @property
    def audio_path(self) -> Path:
        return self.directory / "audio.npy"

    def frames(self) -> np.ndarray:
        """(T, S, S, 3) uint8, memory-mapped read-only."""
        return np.load(self.frames_path, mmap_mode="r")

    def audio(self) -> np.ndarray:
        """(N,) float32, memory-mapped read-only."""
        return np.load(self.audio_path, mmap_mode="r")

    @property
    def video_seconds(self) -> float:
        return self.frame_count / self.fps

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / self.sample_rate


class FrameCache:
    """Decodes each clip once to frames at (fps, size x size) and mono audio, kept on disk.

    ``cache_dir`` is the machine's cache root (default: ``settings.cache_dir``, i.e.
    ``MEMO_ZOO_CACHE_DIR``); entries live under its ``frames/`` folder.
    """

    def __init__(self, cache_dir: str | Path | None = None, *, fps: float = 25.0, size: int = 64,
                 sample_rate: int = media.AUDIO_RATE):
        if fps <= 0 or size <= 0 or sample_rate <= 0:
            raise ValueError(f"fps, size and sample_rate must be positive, got {fps}, {size}, {sample_rate}")
        base = Path(cache_dir) if cache_dir is not None else get_settings().cache_dir
        self.root = base / "frames"
        self.fps = float(fps)
        self.size = int(size)
        self.sample_rate = int(sample_rate)

    def key(self, record: ClipRecord) -> str:
        """The entry name for ``record`` at this cache's (fps, size, sample_rate)."""
        sources = [record.video] if record.audio is None else [record.video, record.audio]
        identity: list[object] = [CACHE_VERSION, self.fps, self.size, self.sample_rate]
        for path in sources:
            path = Path(path)
            try:
                stat = path.stat()
            except OSError:
                raise MediaError(path, "file not found" if not path.exists() else "cannot be read") from None
            # mtime and byte size: a re-encoded or replaced file must not hit the old entry.
            identity += [str(path.resolve()), stat.st_mtime_ns, stat.st_size]
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]

    def lookup(self, record: ClipRecord) -> CachedClip | None:
        """The committed entry for ``record``, or None when it has not been decoded (or is damaged)."""
        directory = self.root / self.key(record)
        try:
            meta = json.loads((directory / "meta.json").read_text())
            if meta.get("version") != CACHE_VERSION:
                return None
            entry = CachedClip(key=directory.name, directory=directory, source=meta["source"],
                               fps=float(meta["fps"]), size=int(meta["size"]),
                               sample_rate=int(meta["sample_rate"]), frame_count=int(meta["frame_count"]),
                               audio_samples=int(meta["audio_samples"]))
            # Opening the maps reads only the headers; a truncated or foreign file fails here
            # rather than in a DataLoader worker half-way through an epoch.
            frames, audio = entry.frames(), entry.audio()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        expected = (entry.frame_count, self.size, self.size, 3)
        if frames.shape != expected or frames.dtype != np.uint8 or audio.shape != (entry.audio_samples,) \
                or audio.dtype != np.float32:
            return None
        return entry

    def entry(self, record: ClipRecord) -> CachedClip:
        """The cached clip, decoding it first if needed; a clip that cannot be decoded raises MediaError."""
        found = self.lookup(record)
        if found is not None:
            return found
        return self._fill(record)

    def _fill(self, record: ClipRecord) -> CachedClip:
        key = self.key(record)
        frames = self._decode_frames(record.video)
        audio = media.read_audio(record.audio_source, self.sample_rate)
        directory = self.root / key
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_save(directory / "frames.npy", np.ascontiguousarray(frames, dtype=np.uint8))
        _atomic_save(directory / "audio.npy", np.ascontiguousarray(audio, dtype=np.float32))
        meta = {"version": CACHE_VERSION, "source": str(record.video), "audio_source": str(record.audio_source),
                "clip_id": record.clip_id, "fps": self.fps, "size": self.size, "sample_rate": self.sample_rate,
                "frame_count": int(frames.shape[0]), "audio_samples": int(audio.shape[0])}
        _atomic_write(directory / "meta.json", json.dumps(meta, indent=1).encode())
        return CachedClip(key=key, directory=directory, source=str(record.video), fps=self.fps,
                          size=self.size, sample_rate=self.sample_rate, frame_count=int(frames.shape[0]),
                          audio_samples=int(audio.shape[0]))

    def _decode_frames(self, path: Path) -> np.ndarray:
        """Frames at ``fps``, scaled so the SHORT side is ``size``, then centre-cropped to a square.

        Scaling straight to size x size would stretch non-square clips; the spec's pipeline
        (§7) centre-crops before resizing, and this keeps that geometry for unprocessed inputs.
        """
        info = media.probe(path)
        if not info.has_video:
            raise MediaError(path, "has no video stream")
        width, height = info.width or self.size, info.height or self.size
        scale = self.size / min(width, height)
        scaled = (max(self.size, round(width * scale)), max(self.size, round(height * scale)))
        frames, _ = media.read_frames(path, fps=self.fps, size=scaled)
        top = (frames.shape[1] - self.size) // 2
        left = (frames.shape[2] - self.size) // 2
        return frames[:, top:top + self.size, left:left + self.size]


def _atomic_write(path: Path, data: bytes) -> None:
    write_bytes_atomically(path, data)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    def save(temp: str) -> None:
        with open(temp, "wb") as file:  # a file object: np.save would add ".npy" to a name
            np.save(file, array, allow_pickle=False)

    write_atomically(path, save)
