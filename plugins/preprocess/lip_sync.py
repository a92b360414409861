"""``preprocess: {kind: lip_sync_filter}``: drop clips whose lips do not follow the audio (spec §7).

The paper keeps clips with SyncNet confidence >= 5. The stage asks a ``SyncScorer`` —
``(frames uint8 (T, H, W, 3), audio float32 16 kHz mono, fps) -> confidence`` — and compares the
answer with the threshold of that scorer:

``scorer: syncnet`` (``threshold``, default 5): SyncNet with weights from a local file. The
network comes with the evaluation suite (spec §8, Sync-C / Sync-D), which registers it here with
``register_syncnet(loader)``; until then this scorer says so instead of guessing.

``scorer: energy_correlation`` (``energy_threshold``, default 4): an offline proxy that needs no
weights. Mouth motion energy m_t is the mean absolute grey-level change between frames t-1 and t
in the lower-middle third of the frame (rows 2/3..1, columns 1/3..2/3: the mouth, in a face crop);
audio activity a_t is the absolute change of the audio RMS envelope between the same frames
(envelope taken over each frame's span of samples). Both are "how much changed at frame t", so
speech onsets and mouth openings line up. r_k is their Pearson correlation with the audio moved
by k frames, for k in -max_offset..max_offset (SyncNet's search window is +-15 frames), and

    confidence = (max_k r_k - median_k r_k) * sqrt(T - 1)

the peak's height over the typical correlation (as SyncNet's confidence is the median minus the
minimum distance over offsets), in units of the standard error of a correlation between unrelated
series of that length: unrelated audio and video give about 2-3 (the largest of 31 noise peaks),
a clip whose mouth follows the audio gives well above 4 once it lasts a few seconds. The scale is
not SyncNet's; ``energy_threshold`` applies to it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import numpy as np

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.media import AUDIO_RATE, read_frames
from memo_zoo.data.pipeline import StageResult, read_clip_audio
from memo_zoo.weights import resolve_weights
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.preprocess.configs import LipSyncConfig

MIN_OVERLAP = 10  # frames two series must share for their correlation at an offset to count


class SyncScorer(Protocol):
    """Lip-sync confidence of a clip: higher = lips follow the audio better."""

    def __call__(self, frames: np.ndarray, audio: np.ndarray, fps: float) -> float: ...


def load_syncnet(weights: str) -> SyncScorer:
    """The evaluation suite's SyncNet (the ``sync`` metric's network, spec §8) as a clip scorer.

    Imported here, not registered from the evaluation side at import time, so that which SyncNet
    the filter uses does not depend on which modules happen to have been imported.
    """
    path = resolve_weights(weights, "SyncNet weights (lip_sync_filter, scorer syncnet)")
    from memo_zoo.perception.syncnet import load_sync_scorer

    return load_sync_scorer(path)


def mouth_motion(frames: np.ndarray) -> np.ndarray:
    """Mean absolute grey change in the lower-middle third, between consecutive frames: (T - 1,)."""
    height, width = frames.shape[1:3]
    region = frames[:, (2 * height) // 3:, width // 3:max(width // 3 + 1, (2 * width) // 3)]
    gray = region.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.abs(np.diff(gray, axis=0)).mean(axis=(1, 2))


def audio_envelope(audio: np.ndarray, fps: float, frames: int) -> np.ndarray:
    """RMS of the samples that play with each video frame: (frames,); silence past the audio's end."""
    hop = AUDIO_RATE / fps
    bounds = np.round(np.arange(frames + 1) * hop).astype(int)
    padded = np.zeros(bounds[-1], dtype=np.float64)
    available = min(len(audio), len(padded))
    padded[:available] = audio[:available]
    energy = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    counts = np.maximum(np.diff(bounds), 1)
    return np.sqrt((energy[bounds[1:]] - energy[bounds[:-1]]) / counts)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum()) / denominator if denominator > 1e-12 else 0.0


def offset_correlations(motion: np.ndarray, activity: np.ndarray, max_offset: int) -> dict[int, float]:
    """Pearson r of motion[t] with activity[t + k], for each offset k with enough overlap."""
    n = len(motion)
    found = {}
    for k in range(-max_offset, max_offset + 1):
        start, stop = max(0, -k), min(n, n - k)
        if stop - start >= MIN_OVERLAP:
            found[k] = _pearson(motion[start:stop], activity[start + k:stop + k])
    return found


class EnergyCorrelationScorer:
    """The offline proxy (module docstring). ``last_offset`` is the best offset of the last call."""

    def __init__(self, max_offset: int = 15):
        self.max_offset = max_offset
        self.last_offset: int | None = None

    def __call__(self, frames: np.ndarray, audio: np.ndarray, fps: float) -> float:
        motion = mouth_motion(frames)
        activity = np.abs(np.diff(audio_envelope(audio, fps, len(frames))))
        correlations = offset_correlations(motion, activity, self.max_offset)
        if not correlations:
            self.last_offset = None
            return 0.0
        values = np.array(list(correlations.values()))
        self.last_offset = max(correlations, key=correlations.get)
        return float((values.max() - np.median(values)) * math.sqrt(len(motion)))


class LipSyncFilter:
    name = "lip_sync_filter"

    def __init__(self, config: LipSyncConfig, scorer: SyncScorer | None = None):
        self.config = config
        if scorer is not None:
            self.scorer = scorer
        elif config.scorer == "syncnet":
            self.scorer = load_syncnet(config.weights)
        else:
            self.scorer = EnergyCorrelationScorer(config.max_offset)
        self.threshold = config.threshold if config.scorer == "syncnet" else config.energy_threshold

    def process(self, clip: ClipRecord, out_dir: Path) -> StageResult:
        audio = read_clip_audio(clip)
        if audio is None:
            return StageResult.drop("no audio to check lip sync against")
        frames, fps = read_frames(clip.video)
        score = float(self.scorer(frames, audio, fps))
        label = f"sync {score:.2f} ({self.config.scorer})"
        if not score >= self.threshold:  # also drops a NaN score
            return StageResult.drop(f"{label} < {self.threshold:g}", score)
        return StageResult.keep(clip, reason=label, value=score)


def build(config: LipSyncConfig) -> LipSyncFilter:
    return LipSyncFilter(config)
