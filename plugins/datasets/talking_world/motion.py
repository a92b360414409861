"""Head motion and blinks of the talking_world synthetic dataset (issue 4).

Real talking heads move slowly and blink every few seconds; a generator that only ever sees a
frozen head or no blinks would be too easy to copy. These tracks give each clip natural-looking
head pose (for :class:`~.face.FaceState`'s yaw/pitch/roll) and blink closures, fully determined by
the ``numpy.random.Generator`` passed in (same generator state -> same track).

- :func:`head_pose_track`: each angle is a sum of a few sinusoids with random low frequencies
  (0.05-0.6 Hz, the band of conversational head movement), random phases and 1/f-like weights.
  Its peak never exceeds the requested amplitude (yaw), 0.6x (pitch) and 0.4x (roll): people turn
  more than they nod and nod more than they tilt. A sum of sinusoids is smooth at every frame
  rate and cheap to evaluate at any length.
- :func:`blink_track`: blink onsets form a renewal process with gamma-distributed intervals
  (mean 60 / rate s, coefficient of variation ~0.58: human inter-blink intervals are right-skewed
  around a few seconds, never shorter than a refractory ~0.4 s); each blink lasts 100-150 ms, the
  lid closing faster than it reopens, and is centred on a frame so it reaches full closure even
  at low frame rates.
"""

from __future__ import annotations

import numpy as np

# Per-axis share of the amplitude: yaw, pitch, roll.
AXIS_SHARE = (1.0, 0.6, 0.4)
_NUM_SINES = 4
_FREQ_RANGE_HZ = (0.05, 0.6)
_BLINK_MS = (100.0, 150.0)
_BLINK_SHAPE = 3.0          # gamma shape of inter-blink intervals (CV = 1/sqrt(3))
_REFRACTORY_S = 0.4
_CLOSE_SHARE = 0.4          # closing takes 40% of the blink, reopening 60%


def _check(num_frames: int, fps: float) -> None:
    if int(num_frames) != num_frames or num_frames < 0:
        raise ValueError(f"num_frames must be a non-negative integer, got {num_frames}")
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")


def head_pose_track(rng: np.random.Generator, num_frames: int, fps: float, amplitude: float) -> np.ndarray:
    """Smooth random head pose, ``(num_frames, 3)`` float64 radians: yaw, pitch, roll per frame.

    ``amplitude`` bounds |yaw|; pitch and roll are bounded by 0.6x and 0.4x of it (see module
    docstring). 0 gives a still head. Keep it <= :data:`~.face.MAX_POSE` for the renderer.
    """
    _check(num_frames, fps)
    if not np.isfinite(amplitude) or amplitude < 0:
        raise ValueError(f"amplitude must be >= 0, got {amplitude}")
    t = np.arange(int(num_frames)) / float(fps)
    out = np.zeros((int(num_frames), 3))
    lo, hi = _FREQ_RANGE_HZ
    for axis, share in enumerate(AXIS_SHARE):
        # Log-uniform frequencies cover slow drifts and quicker nods alike; 1/f weights make the
        # slow components dominate, as in real head motion.
        freqs = lo * (hi / lo) ** rng.random(_NUM_SINES)
        phases = 2.0 * np.pi * rng.random(_NUM_SINES)
        weights = (1.0 / freqs) * (0.5 + rng.random(_NUM_SINES))
        weights *= amplitude * share / weights.sum()     # sum of |weights| bounds the peak
        track = np.sin(2.0 * np.pi * freqs[None, :] * t[:, None] + phases[None, :]) @ weights
        # The bound holds mathematically; the clip removes float round-off, so amplitude = MAX_POSE
        # never yields a pose that FaceState rejects.
        out[:, axis] = np.clip(track, -amplitude * share, amplitude * share)
    return out


def blink_track(rng: np.random.Generator, num_frames: int, fps: float, rate_per_min: float = 17.0) -> np.ndarray:
    """Eyelid closure per frame, ``(num_frames,)`` float64 in [0, 1] (1 = closed).

    ``rate_per_min`` is the mean blink rate (adults in conversation: roughly 10-25 per minute);
    0 means no blinks.
    """
    _check(num_frames, fps)
    if not np.isfinite(rate_per_min) or rate_per_min < 0:
        raise ValueError(f"rate_per_min must be >= 0, got {rate_per_min}")
    n = int(num_frames)
    out = np.zeros(n)
    if rate_per_min == 0 or n == 0:
        return out
    mean = 60.0 / rate_per_min
    duration_s = n / float(fps)
    t_frames = np.arange(n) / float(fps)
    # First onset anywhere within one mean interval, so clips do not all start with a blink.
    t = rng.random() * mean
    while t < duration_s:
        dur = rng.uniform(*_BLINK_MS) / 1000.0
        peak_frame = int(round(t * fps))
        if peak_frame < n:
            peak = peak_frame / float(fps)
            close, reopen = _CLOSE_SHARE * dur, (1.0 - _CLOSE_SHARE) * dur
            lo_f = max(0, int(np.floor((peak - close) * fps)))
            hi_f = min(n, int(np.ceil((peak + reopen) * fps)) + 1)
            dt = t_frames[lo_f:hi_f] - peak
            # Raised-cosine lid profile on each side of the peak: smooth and exactly 1 at the peak.
            phase = np.where(dt < 0, dt / close, dt / reopen)
            shape = np.where(np.abs(phase) < 1.0, 0.5 * (1.0 + np.cos(np.pi * np.clip(phase, -1, 1))), 0.0)
            np.maximum(out[lo_f:hi_f], shape, out=out[lo_f:hi_f])
        gap = rng.gamma(_BLINK_SHAPE, (mean - _REFRACTORY_S) / _BLINK_SHAPE) if mean > _REFRACTORY_S else 0.0
        t += _REFRACTORY_S + gap
    return out
