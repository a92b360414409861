"""Shared pieces of the audio encoders: frame-rate resampling, +-w frame windows, token MLP (spec A5).

Every audio encoder turns a feature sequence at its own rate (log-mel: 100 Hz, wav2vec2: 50 Hz)
into one feature per video frame, then gives each video frame the features of its neighbours
(``window`` frames either side, A5 default 2) and projects that window to ``token_count`` tokens of
``token_dim`` (the released code's AudioProjModel: flatten -> MLP -> tokens -> LayerNorm).

Time stamps, not index stretching: feature ``k`` sits at ``offset + k / rate`` seconds and video
frame ``i`` is sampled at the middle of its display interval, ``(i + 0.5) / fps``; values are
linearly interpolated between the two nearest features and clamped at the ends. This keeps a
sound at second s attached to the frame shown at second s whatever the clip length (stretching
with ``align_corners=True``, as Hallo-style code does, drifts by up to half a feature frame).
"""

from __future__ import annotations


import torch
from torch import Tensor, nn
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.audio_encoder.configs import Padding

SAMPLE_RATE = 16_000  # every encoder reads mono 16 kHz (the AudioEncoder protocol)


def check_encode_args(waveform: Tensor, num_frames: int, fps: float, pad_frames: int) -> None:
    """Reject malformed calls with a message naming the protocol (memo_zoo.slots.audio_encoder.AudioEncoder)."""
    if waveform.dim() != 2:
        raise ValueError(f"waveform must be (batch, samples) mono 16 kHz, got shape {tuple(waveform.shape)}")
    if waveform.shape[1] == 0:
        raise ValueError("waveform has no samples")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if pad_frames < 0:
        raise ValueError(f"pad_frames must be >= 0, got {pad_frames}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")


def resample_to_frames(features: Tensor, rate: float, offset: float, fps: float, num_frames: int,
                       sub_frames: int = 1) -> Tensor:
    """(B, N, ...) features at ``rate`` Hz -> (B, num_frames * sub_frames, ...) at the video's times.

    Feature ``k`` is taken to sit at ``offset + k / rate`` seconds. Output row ``i * sub_frames + j``
    is the value at ``(i + (j + 0.5) / sub_frames) / fps`` (sub_frames=1: the middle of frame i),
    linearly interpolated; times outside the features take the nearest end feature.
    """
    n = features.shape[1]
    steps = torch.arange(num_frames * sub_frames, dtype=torch.float64, device=features.device)
    times = (steps + 0.5) / (sub_frames * fps)
    # float64 positions: at 50 Hz over a long song, float32 would misplace frames by a sample or more
    position = ((times - offset) * rate).clamp(0, n - 1)
    lo = position.floor().long().clamp(max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    weight = (position - lo).to(features.dtype)
    weight = weight.view(1, -1, *([1] * (features.dim() - 2)))
    return features[:, lo] * (1 - weight) + features[:, hi] * weight


def frame_windows(frames: Tensor, window: int, start: int, count: int, padding: Padding = "replicate") -> Tensor:
    """(B, F, ...) per-frame features -> (B, count, 2 * window + 1, ...) for frames start..start+count-1.

    Entry ``[:, i, window + d]`` is frame ``start + i + d``. Frames outside 0..F-1 repeat the
    nearest edge frame (``replicate``: the released code clamps the index) or are zero (``zero``).
    """
    total = frames.shape[1]
    offsets = torch.arange(-window, window + 1, device=frames.device)
    index = torch.arange(start, start + count, device=frames.device)[:, None] + offsets[None, :]
    out = frames[:, index.clamp(0, total - 1)]  # (B, count, 2w+1, ...)
    if padding == "zero":
        inside = ((index >= 0) & (index < total)).to(frames.dtype)
        out = out * inside.view(1, count, 2 * window + 1, *([1] * (frames.dim() - 2)))
    return out


class TokenProjector(nn.Module):
    """Flattened window of one frame -> ``token_count`` tokens of ``token_dim`` (A5's "small MLP").

    The released AudioProjModel's shape: Linear -> ReLU -> Linear -> ReLU -> Linear to T * A, then
    a LayerNorm per token so that the audio modules see unit-scale tokens whatever the features.
    """

    def __init__(self, in_features: int, hidden: int, token_count: int, token_dim: int):
        super().__init__()
        self.token_count, self.token_dim = token_count, token_dim
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, token_count * token_dim),
        )
        self.norm = nn.LayerNorm(token_dim)

    def forward(self, windows: Tensor) -> Tensor:
        """(B, F, ...) -> (B, F, token_count, token_dim); everything after dim 1 is flattened."""
        b, f = windows.shape[:2]
        tokens = self.mlp(windows.reshape(b, f, -1))
        return self.norm(tokens.view(b, f, self.token_count, self.token_dim))
