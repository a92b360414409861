"""Segment-level emotion labels (spec E5): one 3 s window per video frame, majority per segment.

For every video frame ``i`` (shown during ``[i / fps, (i + 1) / fps)``) a detector classifies a
``window_seconds`` (3 s) audio window centred on the frame's midpoint; near the ends the window
is shifted to stay inside the audio (clamped), so every window holds a full 3 s of real audio
when there is that much. A segment's (a generated clip's) label is the most frequent frame label
(:func:`segment_labels`).

Computation is shared wherever the result does not change:

- windows that coincide (all the clamped ones at each end; all of them when the audio is shorter
  than a window) are classified once (:func:`frame_windows` returns the unique windows and, per
  frame, which one it uses);
- ``stride = k`` classifies one frame in k (the middle one of each block of k frames) and holds
  its label over the block: k times fewer windows, an option for expensive backbones;
- a backbone may compute frame-level features once on the whole audio and pool them per window
  (``prosody_mlp`` does, with cumulative sums); emotion2vec, being contextual, classifies each
  unique window itself, in batches.

Bad input (issue 6), handled by :func:`prepare_audio` and :func:`label_frames`:

- audio shorter than a window: classified as a whole, without padding, because zero padding would
  dilute every time-averaged feature (loudness, voicing) toward silence; audio shorter than
  ``MIN_SECONDS`` (0.1 s, below which neither backbone has a full analysis frame) is zero-padded to
  it, with an :class:`EmotionInputWarning`;
- silence: a window whose RMS is below ``silence_db`` dBFS carries no vocal emotion, and a
  classifier's output on it is arbitrary (it never saw silence labelled), so it gets
  ``silence_label`` (default ``neutral``) deterministically; all-silent audio also warns, since it
  usually means a muted or wrong track;
- clipping (more than 0.1 % of samples at full scale) warns: loudness features read high;
- samples in (1, 1.5] are clamped with a warning; a peak above 1.5 means unscaled integer PCM and
  is refused, as are empty and non-finite audio (a ``MemoZooError`` naming the problem);
- integer tensors are scaled to [-1, 1] by their dtype, other sample rates resampled to 16 kHz
  (spec D3), channels (``(C, S)``) averaged to mono.

:func:`label_audio_file` reads a file (any format ``memo_zoo.data.media.read_audio`` reads: 8-bit,
48 kHz, stereo, AAC...) and caches the frame labels under ``<settings.cache_dir>/emotion``, keyed by
the file's resolved path, mtime and size, the detector's fingerprint (its config and checkpoint),
fps and frame count.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from memo_zoo.atomic import write_atomically
from memo_zoo.data.media import AUDIO_RATE, read_audio
from memo_zoo.emotion import WINDOW_SECONDS  # one home, light: component configs default to it
from memo_zoo.errors import MemoZooError
from memo_zoo.settings import get_settings

MIN_SECONDS = 0.1
CLIPPED_LEVEL = 0.999  # |x| at or above this counts as a full-scale (clipped) sample
CLIPPED_FRACTION = 0.001
UNSCALED_PEAK = 1.5
# Bump when labelling changes for the same detector and file, so cached labels are recomputed.
CACHE_VERSION = 1


class EmotionInputWarning(UserWarning):
    """Audio a detector can label, but whose labels deserve a second look (silent, clipped, tiny)."""


@dataclass(frozen=True)
class FrameWindows:
    """The unique windows to classify and which one each video frame uses.

    ``starts``/``ends``: (W,) int64 sample positions of the unique windows (sorted by start);
    ``frame_window``: (num_frames,) int64 index into them.
    """

    starts: np.ndarray
    ends: np.ndarray
    frame_window: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


def frame_windows(num_samples: int, fps: float, num_frames: int, window_seconds: float = WINDOW_SECONDS,
                  stride: int = 1, sample_rate: int = AUDIO_RATE) -> FrameWindows:
    """The window of every video frame (spec E5), deduplicated; see the module docstring."""
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    empty = np.zeros(0, dtype=np.int64)
    if num_frames == 0:
        return FrameWindows(empty, empty, empty)
    frames = np.arange(num_frames, dtype=np.int64)
    block = frames // stride
    block_start = block * stride
    block_len = np.minimum(block_start + stride, num_frames) - block_start
    representative = block_start + (block_len - 1) // 2  # the middle frame of each block
    width = int(round(window_seconds * sample_rate))
    if num_samples <= width:
        starts = np.zeros(num_frames, dtype=np.int64)
        ends = np.full(num_frames, num_samples, dtype=np.int64)
    else:
        centre = (representative + 0.5) / fps * sample_rate
        starts = np.clip(np.round(centre - width / 2).astype(np.int64), 0, num_samples - width)
        ends = starts + width
    unique, inverse = np.unique(starts, return_inverse=True)
    return FrameWindows(unique, unique + (ends[0] - starts[0]), inverse.reshape(-1).astype(np.int64))


def segment_labels(frame_labels: torch.Tensor, segment_length: int) -> torch.Tensor:
    """Most frequent frame label of each run of ``segment_length`` frames (spec E5).

    The last segment may be shorter. Ties go to the tied label that occurs FIRST in the segment:
    it is the label the previous segment most likely ended with, so a tie never adds an extra
    expression change at a boundary. Returns a LongTensor (ceil(num_frames / segment_length),).
    """
    if segment_length < 1:
        raise ValueError(f"segment_length must be >= 1, got {segment_length}")
    labels = torch.as_tensor(frame_labels).long().reshape(-1)
    if labels.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    if int(labels.min()) < 0:
        raise ValueError("frame labels must be >= 0")
    n, classes = labels.numel(), int(labels.max()) + 1
    segment = torch.arange(n) // segment_length
    count = int(segment[-1]) + 1
    flat = segment * classes + labels  # one cell per (segment, class)
    counts = torch.bincount(flat, minlength=count * classes).view(count, classes)
    position = torch.arange(n) - segment * segment_length
    first = torch.full((count * classes,), segment_length, dtype=torch.long).scatter_reduce(
        0, flat, position, "amin").view(count, classes)
    # Counts dominate (x (length + 1)); among equal counts the earlier first occurrence wins.
    score = counts * (segment_length + 1) - first
    return score.argmax(dim=1)


def clip_label(frame_labels: torch.Tensor) -> int:
    """The label of one whole clip: the majority over all its frames (spec E5)."""
    labels = torch.as_tensor(frame_labels).reshape(-1)
    if labels.numel() == 0:
        raise ValueError("a clip with no frames has no label")
    return int(segment_labels(labels, labels.numel())[0])


# ---------------------------------------------------------------------------------- bad input


def prepare_audio(audio: torch.Tensor | np.ndarray, sample_rate: int) -> np.ndarray:
    """Any waveform -> mono float32 at 16 kHz in [-1, 1] (spec D3), or a MemoZooError saying why not."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio)
    if audio.dtype.kind in "iu":
        info = np.iinfo(audio.dtype)
        # Integer PCM: full scale is 2^(bits-1); unsigned formats (8-bit WAV) are centred on it.
        scale = (int(info.max) + 1) / 2 if audio.dtype.kind == "u" else float(-int(info.min))
        offset = scale if audio.dtype.kind == "u" else 0.0
        audio = (audio.astype(np.float64) - offset) / scale
    elif audio.dtype.kind != "f":
        raise MemoZooError(f"audio must be a float or integer array, got dtype {audio.dtype}")
    if audio.ndim == 2:
        channels = audio.shape[0]
        if channels > 8 or channels >= audio.shape[1]:
            raise MemoZooError(f"audio of shape {tuple(audio.shape)}: expected (samples,) or (channels, samples) "
                               "with at most 8 channels")
        audio = audio.mean(axis=0)
    elif audio.ndim != 1:
        raise MemoZooError(f"audio must be 1-D (samples,) or 2-D (channels, samples), got shape {tuple(audio.shape)}")
    if audio.size == 0:
        raise MemoZooError("audio has no samples")
    if not np.all(np.isfinite(audio)):
        raise MemoZooError(f"audio has {int(np.sum(~np.isfinite(audio)))} non-finite samples (NaN or inf)")
    if sample_rate <= 0:
        raise MemoZooError(f"sample_rate must be positive, got {sample_rate}")
    audio = audio.astype(np.float32, copy=False)
    if sample_rate != AUDIO_RATE:
        g = math.gcd(int(sample_rate), AUDIO_RATE)
        # scipy.signal takes about a second to import: only here, when audio needs resampling, not
        # whenever the emotion plugin registers (memo-zoo ls, validate, schema).
        from scipy.signal import resample_poly

        audio = resample_poly(audio, AUDIO_RATE // g, int(sample_rate) // g).astype(np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > UNSCALED_PEAK:
        raise MemoZooError(f"audio peaks at {peak:.4g}: samples must be floats in [-1, 1]; this looks like "
                           "unscaled integer PCM (divide 16-bit samples by 32768)")
    if peak > 1.0:
        warnings.warn(f"audio exceeds [-1, 1] (peak {peak:.3f}); clamped", EmotionInputWarning, stacklevel=3)
        audio = np.clip(audio, -1.0, 1.0)
    clipped = float(np.mean(np.abs(audio) >= CLIPPED_LEVEL))
    if clipped > CLIPPED_FRACTION:
        warnings.warn(f"{100 * clipped:.2f}% of the samples are at full scale (a clipped recording): loudness "
                      "features read high and labels may lean toward loud emotions", EmotionInputWarning,
                      stacklevel=3)
    minimum = int(round(MIN_SECONDS * AUDIO_RATE))
    if audio.size < minimum:
        warnings.warn(f"audio is {audio.size / AUDIO_RATE:.3f} s long; zero-padded to {MIN_SECONDS} s, the "
                      "shortest input a detector can analyse: its label is a guess", EmotionInputWarning,
                      stacklevel=3)
        audio = np.pad(audio, (0, minimum - audio.size))
    return np.ascontiguousarray(audio, dtype=np.float32)


def window_levels_db(audio: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each window [start, end), from one cumulative sum of squares."""
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    mean = (energy[ends] - energy[starts]) / np.maximum(ends - starts, 1)
    return 10.0 * np.log10(np.maximum(mean, 1e-12))


# A classifier of windows: (16 kHz mono audio, starts, ends) -> (W, classes) logits.
WindowClassifier = Callable[[np.ndarray, np.ndarray, np.ndarray], torch.Tensor]


def label_frames(audio: torch.Tensor | np.ndarray, sample_rate: int, fps: float, num_frames: int,
                 classify: WindowClassifier, *, labels: tuple[str, ...], window_seconds: float = WINDOW_SECONDS,
                 stride: int = 1, silence_db: float | None = -55.0,
                 silence_label: str | None = "neutral") -> torch.Tensor:
    """Frame labels (num_frames,) long by E5: prepare the audio, classify each unique window once,
    put ``silence_label`` on windows quieter than ``silence_db``, map windows back to frames."""
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if num_frames == 0:
        return torch.zeros(0, dtype=torch.long)
    samples = prepare_audio(audio, sample_rate)
    windows = frame_windows(len(samples), fps, num_frames, window_seconds, stride)
    window_label = torch.full((len(windows),), -1, dtype=torch.long)
    silent = np.zeros(len(windows), dtype=bool)
    if silence_db is not None and silence_label is not None:
        silent = window_levels_db(samples, windows.starts, windows.ends) < silence_db
        window_label[torch.from_numpy(silent)] = labels.index(silence_label)
        if silent.all():
            warnings.warn(f"the audio is silent (every window below {silence_db} dBFS): every frame is labelled "
                          f"{silence_label!r}; check that this is the right (unmuted) track",
                          EmotionInputWarning, stacklevel=3)
    todo = np.flatnonzero(~silent)
    if todo.size:
        logits = classify(samples, windows.starts[todo], windows.ends[todo])
        if logits.shape != (todo.size, len(labels)):
            raise RuntimeError(f"window classifier returned {tuple(logits.shape)}, expected {(todo.size, len(labels))}")
        window_label[torch.from_numpy(todo)] = logits.argmax(dim=1).cpu()
    return window_label[torch.from_numpy(windows.frame_window)]


# ---------------------------------------------------------------------------------- file cache


def _file_identity(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"path": str(path.resolve()), "mtime_ns": stat.st_mtime_ns, "size": stat.st_size}


def cache_key(path: str | Path, fingerprint: str, fps: float, num_frames: int) -> str:
    """Hash of what frame labels of a file depend on: the file, the detector, fps and frame count."""
    data = {"file": _file_identity(Path(path)), "detector": fingerprint, "fps": float(fps),
            "frames": int(num_frames), "version": CACHE_VERSION}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def label_audio_file(detector, path: str | Path, fps: float, num_frames: int | None = None,
                     cache: bool = True, cache_dir: str | Path | None = None) -> torch.Tensor:
    """Frame labels (num_frames,) of an audio or video file, cached per file and detector.

    ``num_frames`` defaults to the audio's duration times ``fps`` (rounded). Detectors without a
    ``fingerprint`` (e.g. ``fixed``) are not cached: there is nothing to save. A cache entry is
    written atomically (temp file + rename), so an interrupted run never leaves a partial one.
    """
    path = Path(path)
    audio = None
    if num_frames is None:
        audio = read_audio(path)
        num_frames = int(round(len(audio) / AUDIO_RATE * fps))
    fingerprint = getattr(detector, "fingerprint", None)
    target = None
    if cache and fingerprint:
        folder = Path(cache_dir) if cache_dir is not None else get_settings().cache_dir / "emotion"
        target = folder / f"{cache_key(path, fingerprint, fps, num_frames)}.npy"
        if target.is_file():
            try:
                stored = np.load(target, allow_pickle=False)
            except (OSError, ValueError):
                stored = None  # unreadable entry: recompute and overwrite it
            if stored is not None and stored.shape == (num_frames,):
                return torch.from_numpy(stored.astype(np.int64))
    if audio is None:
        audio = read_audio(path)
    result = detector.frame_labels(torch.from_numpy(audio), AUDIO_RATE, fps, num_frames)
    if target is not None:
        labels = result.numpy().astype(np.int16)

        def save(temp: str) -> None:
            with open(temp, "wb") as file:  # a file object: np.save would add ".npy" to a name
                np.save(file, labels)

        write_atomically(target, save)
    return result
