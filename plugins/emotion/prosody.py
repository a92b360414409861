"""``prosody_mlp``: a small CPU detector, log-mel / pitch / energy statistics -> the D1 MLP head.

The default detector on the synthetic world (talking_world speaks each emotion with its own
pitch, range, rate and loudness; speech.py), and a baseline for real corpora. It trains from
scratch on CPU in minutes (``memo-zoo run recipes/train_emotion_detector.yaml``), which writes the
``checkpoint``. The checkpoint is a required option, so a recipe naming no trained head is refused
when validated; the headless detector that training starts from (:func:`untrained`) refuses to
label anything (``UntrainedDetectorError``: "untrained: give `checkpoint`") rather than return
untrained guesses.

Backbone (fixed, nothing learned; the head learns). Frame level, every 10 ms (frame ``f`` centred
on sample ``160 f`` of the 16 kHz audio, spec D3), computed ONCE on the whole audio:

- log-mel energies (``n_mels`` bands, 25 ms Hann frames, floored at ``floor_db``),
- loudness: RMS level in dBFS over 40 ms,
- pitch: normalised autocorrelation of 40 ms Hann frames (corrected by the window's own
  autocorrelation, Boersma 1993), lag search in [f0_min, f0_max], first local maximum within 15 %
  of the best one (guards against octave-down errors), parabolic interpolation; a frame is voiced
  when that peak reaches ``voicing_threshold`` and the frame is louder than ``voicing_db``; f0 in
  semitones re 100 Hz,
- spectral flux (mean rise of the log-mel bands between frames) and voicing onsets (syllable-rate
  proxies).

Window level (spec E5's 3 s windows; one vector per window, from prefix sums, so 15,000 windows of
a 10-minute audio cost little more than one): per band mean and std of log-mel; loudness mean,
std, slope (dB/s) and mean over voiced frames; voiced fraction; f0 mean, std, slope (st/s) over
voiced frames and mean |delta f0| between consecutive voiced frames; onset rate (1/s); flux mean
and std; histograms (shares of the voiced frames) of loudness (9 bins) and f0 (10 bins), which give
the shape of the distributions (range, skew) that means and stds miss. ``2 * n_mels + 31`` features
(63 by default). Slopes use least squares on (time, value).

The choices were made on talking_world with held-out speakers (3:1 speaker split, three split
seeds): the histograms added about 5 points of frame accuracy, and 16 mel bands did better than
32 (about 6 points; the bands mostly describe who speaks, not how).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from memo_zoo.data.media import AUDIO_RATE
from memo_zoo.errors import MemoZooError

# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import PITCH_FRAME, ProsodyFeatures, ProsodyMLPConfig
from .mlp_head import HeadDetector, HeadOptions, load_head

KIND = "prosody_mlp"
FEATURES_VERSION = 1
HOP = 160  # 10 ms at 16 kHz
MEL_FRAME, MEL_FFT = 400, 512  # 25 ms
PITCH_FFT = 1024  # FFT size of the 640-sample (40 ms) pitch frames, PITCH_FRAME
# A circular autocorrelation of size N equals the linear one for lags <= N - PITCH_FRAME (384 here),
# above the longest lag searched (16000 / 60 Hz = 267), so N need not be 2 x 640.
CHUNK_FRAMES = 8192  # frames per FFT batch: bounds memory on long audio (~70 MB per chunk)
UNTRAINED_HINT = (" (a .safetensors written by `memo-zoo run recipes/train_emotion_detector.yaml`); an untrained "
                  "detector would return arbitrary labels")


def mel_filterbank(n_mels: int, fmin: float, fmax: float, n_fft: int = MEL_FFT, rate: int = AUDIO_RATE) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters equally spaced on the HTK mel scale."""
    def to_mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def to_hz(mel):
        return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))
    bins = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins[None]) / np.maximum(upper - centre, 1e-9)
    return torch.from_numpy(np.maximum(0.0, np.minimum(rising, falling))).float()


def _centred_frames(audio: torch.Tensor, length: int, start: int, count: int) -> torch.Tensor:
    """Frames ``start .. start + count`` of ``length`` samples centred on sample ``HOP * f`` (zero padded)."""
    half = length // 2
    first = start * HOP - half
    last = (start + count - 1) * HOP - half + length
    lo, hi = max(first, 0), min(last, audio.numel())
    piece = audio[lo:hi]
    piece = torch.nn.functional.pad(piece, (lo - first, last - hi))
    return piece.unfold(0, length, HOP)


class FrameFeatures:
    """Frame-level tracks of one audio (see the module docstring), float64 numpy arrays of F frames."""

    def __init__(self, logmel: np.ndarray, loudness: np.ndarray, voiced: np.ndarray, f0: np.ndarray,
                 flux: np.ndarray):
        self.logmel, self.loudness, self.voiced, self.f0, self.flux = logmel, loudness, voiced, f0, flux

    @property
    def frames(self) -> int:
        return len(self.loudness)


def frame_features(audio: np.ndarray, settings: ProsodyFeatures) -> FrameFeatures:
    """Frame-level tracks of 16 kHz mono audio, ``1 + len(audio) // HOP`` frames."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    count = 1 + x.numel() // HOP
    mel_window = torch.hann_window(MEL_FRAME, periodic=True)
    pitch_window = torch.hann_window(PITCH_FRAME, periodic=True)
    fbank = mel_filterbank(settings.n_mels, settings.fmin, settings.fmax)
    # Autocorrelation of the window itself: dividing by it removes the taper's decay with lag.
    window_ac = torch.fft.irfft(torch.fft.rfft(pitch_window, PITCH_FFT).abs() ** 2, PITCH_FFT)
    lag_lo = max(2, int(math.floor(AUDIO_RATE / settings.f0_max)))
    lag_hi = min(PITCH_FRAME - 2, int(math.ceil(AUDIO_RATE / settings.f0_min)))
    window_ac = window_ac[: lag_hi + 2] / window_ac[0]
    floor_power = 10.0 ** (settings.floor_db / 10.0)
    logmel, loudness, f0, voiced = [], [], [], []
    for start in range(0, count, CHUNK_FRAMES):
        n = min(CHUNK_FRAMES, count - start)
        frames = _centred_frames(x, MEL_FRAME, start, n) * mel_window
        power = torch.fft.rfft(frames, MEL_FFT).abs() ** 2 / MEL_FRAME
        logmel.append(10.0 * torch.log10(torch.clamp(power @ fbank.T, min=floor_power)))

        raw = _centred_frames(x, PITCH_FRAME, start, n)
        level = 10.0 * torch.log10(torch.clamp(raw.double().square().mean(dim=1), min=floor_power))
        loudness.append(level)
        tapered = (raw - raw.mean(dim=1, keepdim=True)) * pitch_window
        ac = torch.fft.irfft(torch.fft.rfft(tapered, PITCH_FFT).abs() ** 2, PITCH_FFT)[:, : lag_hi + 2]
        ac = ac / torch.clamp(ac[:, :1], min=1e-12) / window_ac
        search = ac[:, lag_lo: lag_hi + 1]
        best = search.max(dim=1, keepdim=True).values
        left, right = ac[:, lag_lo - 1: lag_hi], ac[:, lag_lo + 1: lag_hi + 2]
        peaks = (search >= left) & (search >= right) & (search >= 0.85 * best)
        first = torch.where(peaks.any(dim=1), peaks.float().argmax(dim=1), search.argmax(dim=1))
        rows = torch.arange(n)
        lag = first + lag_lo
        y0, y1, y2 = ac[rows, lag - 1], ac[rows, lag], ac[rows, lag + 1]
        denominator = y0 - 2 * y1 + y2
        shift = torch.where(denominator.abs() > 1e-9, 0.5 * (y0 - y2) / denominator, torch.zeros_like(y1))
        refined = lag.double() + shift.clamp(-0.5, 0.5).double()
        is_voiced = (y1 >= settings.voicing_threshold) & (level >= settings.voicing_db)
        voiced.append(is_voiced)
        f0.append(torch.where(is_voiced, 12.0 * torch.log2(AUDIO_RATE / refined / 100.0), torch.zeros_like(refined)))
    mel = torch.cat(logmel).double().numpy()
    flux = np.zeros(count)
    flux[1:] = np.maximum(np.diff(mel, axis=0), 0.0).mean(axis=1)
    return FrameFeatures(mel, torch.cat(loudness).numpy(), torch.cat(voiced).numpy(), torch.cat(f0).numpy(), flux)


# Histogram bin edges: loudness in dBFS over the range speech occupies, f0 in semitones re 100 Hz
# from a low male voice (~60 Hz) to a raised female one (~380 Hz), about 4 semitones per bin.
LOUDNESS_EDGES = np.array([-45.0, -38.0, -32.0, -27.0, -23.0, -19.0, -15.0, -11.0])
PITCH_EDGES = np.array([-9.0, -5.0, -1.0, 3.0, 7.0, 11.0, 15.0, 19.0, 23.0])


def _one_hot(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(F, len(edges) + 1) bin membership of each frame; prefix sums of it count frames per bin."""
    return np.eye(len(edges) + 1)[np.searchsorted(edges, values)]


class _Prefix:
    """Prefix sums of frame tracks: any statistic of a frame range [a, b) in O(1)."""

    def __init__(self, columns: np.ndarray):
        self.sums = np.concatenate([np.zeros((1, columns.shape[1])), np.cumsum(columns, axis=0)])

    def range(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.sums[b] - self.sums[a]


def _moments(n, s_t, s_tt, s_x, s_xx, s_tx, minimum: float = 1.0):
    """Mean, std and least-squares slope from weighted sums; zeros where there are too few frames."""
    ok = n >= minimum
    safe = np.where(ok, n, 1.0)
    mean = np.where(ok, s_x / safe, 0.0)
    std = np.sqrt(np.maximum(np.where(ok, s_xx / safe - mean ** 2, 0.0), 0.0))
    spread = n * s_tt - s_t ** 2
    slope_ok = ok & (n >= 2) & (spread > 1e-9)
    slope = np.where(slope_ok, (n * s_tx - s_t * s_x) / np.where(slope_ok, spread, 1.0), 0.0)
    return mean, std, slope


def window_statistics(tracks: FrameFeatures, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """(W, feature_count) statistics of frame ranges [first, last) (see the module docstring)."""
    t = np.arange(tracks.frames) * (HOP / AUDIO_RATE)
    voiced = tracks.voiced.astype(np.float64)
    f0, loud, mel = tracks.f0, tracks.loudness, tracks.logmel
    onset = np.zeros(tracks.frames)
    onset[1:] = voiced[1:] * (1.0 - voiced[:-1])
    pair = np.zeros(tracks.frames)
    pair[1:] = voiced[1:] * voiced[:-1]
    jump = np.zeros(tracks.frames)
    jump[1:] = np.abs(np.diff(f0)) * pair[1:]
    columns = np.column_stack([
        np.ones_like(t), t, t * t,                                     # 0-2  frame count and time sums
        loud, loud * loud, t * loud,                                    # 3-5  loudness
        voiced, voiced * t, voiced * t * t, voiced * f0, voiced * f0 * f0, voiced * t * f0,  # 6-11 pitch
        voiced * loud, onset, pair, jump, tracks.flux, tracks.flux ** 2,  # 12-17
        mel, mel * mel,                                                 # 18-
        voiced[:, None] * _one_hot(loud, LOUDNESS_EDGES), voiced[:, None] * _one_hot(f0, PITCH_EDGES)])
    sums = _Prefix(columns).range(first, last)
    n, s_t, s_tt = sums[:, 0], sums[:, 1], sums[:, 2]
    loud_mean, loud_std, loud_slope = _moments(n, s_t, s_tt, sums[:, 3], sums[:, 4], sums[:, 5])
    nv = sums[:, 6]
    f0_mean, f0_std, f0_slope = _moments(nv, sums[:, 7], sums[:, 8], sums[:, 9], sums[:, 10], sums[:, 11])
    voiced_loud = np.where(nv > 0, sums[:, 12] / np.maximum(nv, 1.0), loud_mean)
    seconds = n * (HOP / AUDIO_RATE)
    onset_rate = sums[:, 13] / seconds
    jump_mean = np.where(sums[:, 14] > 0, sums[:, 15] / np.maximum(sums[:, 14], 1.0), 0.0)
    flux_mean = sums[:, 16] / n
    flux_std = np.sqrt(np.maximum(sums[:, 17] / n - flux_mean ** 2, 0.0))
    bands = mel.shape[1]
    mel_mean = sums[:, 18: 18 + bands] / n[:, None]
    mel_std = np.sqrt(np.maximum(sums[:, 18 + bands: 18 + 2 * bands] / n[:, None] - mel_mean ** 2, 0.0))
    histograms = sums[:, 18 + 2 * bands:] / np.maximum(nv, 1.0)[:, None]
    scalars = np.column_stack([loud_mean, loud_std, loud_slope, voiced_loud, nv / n, f0_mean, f0_std, f0_slope,
                               jump_mean, onset_rate, flux_mean, flux_std])
    return np.concatenate([mel_mean, mel_std, scalars, histograms], axis=1)


def feature_count(settings: ProsodyFeatures) -> int:
    return 2 * settings.n_mels + 12 + len(LOUDNESS_EDGES) + 1 + len(PITCH_EDGES) + 1


class ProsodyBackbone:
    """``WindowBackbone`` of prosody_mlp: frame tracks once per audio, statistics per window."""

    def __init__(self, settings: ProsodyFeatures):
        self.features = settings
        self.feature_dim = feature_count(settings)

    def settings(self) -> dict[str, Any]:
        return {"name": KIND, "version": FEATURES_VERSION, **self.features.model_dump(mode="json")}

    def window_features(self, audio: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> torch.Tensor:
        tracks = frame_features(audio, self.features)
        # Frame f (centred on sample HOP * f) belongs to window [s, e) when s <= HOP * f < e.
        first = np.minimum(-(-np.asarray(starts) // HOP), tracks.frames - 1)
        last = np.clip(-(-np.asarray(ends) // HOP), first + 1, tracks.frames)
        return torch.from_numpy(window_statistics(tracks, first, last)).float()


def _adopt_features(config: ProsodyMLPConfig, stored: dict[str, Any], path: str) -> ProsodyFeatures:
    """The checkpoint's analysis settings, unless the recipe explicitly asked for different ones."""
    stored = {k: v for k, v in stored.items() if k in ProsodyFeatures.model_fields}
    from_checkpoint = ProsodyFeatures(**stored)
    if "features" in config.model_fields_set:
        asked = config.features.model_dump(mode="json")
        differ = {k: (asked[k], v) for k, v in from_checkpoint.model_dump(mode="json").items() if asked[k] != v}
        if differ:
            details = ", ".join(f"{k}: recipe {a!r} vs checkpoint {c!r}" for k, (a, c) in differ.items())
            raise MemoZooError(f"{path}: trained with other feature settings than the recipe's ({details}); "
                               "drop `features` from the recipe to use the checkpoint's")
    return from_checkpoint


def _options(config: ProsodyMLPConfig) -> HeadOptions:
    return HeadOptions(**{name: getattr(config, name) for name in HeadOptions.model_fields})


def untrained(config: ProsodyMLPConfig) -> HeadDetector:
    """The backbone of ``config.features`` with no head (``checkpoint`` is not read): what train_emotion
    trains, and writes to ``checkpoint``. It refuses to label (``UntrainedDetectorError``)."""
    return HeadDetector(KIND, ProsodyBackbone(config.features), _options(config), untrained_hint=UNTRAINED_HINT)


def build(config: ProsodyMLPConfig) -> HeadDetector:
    head, description, path = load_head(config.checkpoint, kind=KIND, label_set=config.label_set,
                                  what="prosody_mlp checkpoint")
    stored = description.get("backbone", {})
    if stored.get("version") != FEATURES_VERSION:
        raise MemoZooError(f"{config.checkpoint}: trained on prosody features version {stored.get('version')}, this "
                           f"memo-zoo computes version {FEATURES_VERSION}; retrain the head")
    backbone = ProsodyBackbone(_adopt_features(config, stored, config.checkpoint))
    if head.in_dim != backbone.feature_dim:
        raise MemoZooError(f"{config.checkpoint}: the head takes {head.in_dim} features but its backbone settings "
                           f"give {backbone.feature_dim}")
    return HeadDetector(KIND, backbone, _options(config), head, path, UNTRAINED_HINT)
