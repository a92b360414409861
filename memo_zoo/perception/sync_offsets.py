"""SyncNet's audio-visual offset search on per-frame embeddings: Sync-D, Sync-C, the AV offset (spec §8).

Given one video embedding v_i and one audio embedding a_i per video frame i (each from a 5-frame /
0.2 s window starting at i), the distance at shift k is

    D[i, k] = || v_i - a_(i + k) ||_2          for k in -K..K (K = 15 in the literature),

with a_j = 0 outside the clip, exactly as SyncNet's reference evaluation pads the audio features
with zero rows before sliding them past the video features (so edge frames at large shifts are
compared with the zero vector, which is far: those shifts are penalised rather than skipped).
``torch.nn.functional.pairwise_distance``'s eps (1e-6 added to the difference) is kept too.
Then, per video,

    d_k        = mean_i D[i, k]            (the mean distance at shift k)
    Sync-D     = min_k d_k                 (lower is better)
    Sync-C     = median_k d_k - min_k d_k  (confidence: how far the best shift stands out)
    AV offset  = -argmin_k d_k             (SyncNet reports ``K - argmin index``, i.e. minus the
                                            shift; positive when the audio's best match comes
                                            earlier than the video frame)

and the figures of a set of videos are the means of the per-video values (LSE-D / LSE-C in
Wav2Lip's terms). Hand-written: no maintained library computes these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PAIRWISE_EPS = 1e-6  # torch.nn.functional.pairwise_distance's default, used by the reference search


@dataclass(frozen=True)
class OffsetSearch:
    """Result of ``search_offsets`` for one video."""

    shifts: np.ndarray           # (2K + 1,) the shifts k = -K..K
    mean_distances: np.ndarray   # (2K + 1,) d_k
    frame_distances: np.ndarray  # (T, 2K + 1) D[i, k]

    @property
    def best_shift(self) -> int:
        return int(self.shifts[int(np.argmin(self.mean_distances))])

    @property
    def av_offset(self) -> int:
        """SyncNet's "AV offset" (module docstring)."""
        return -self.best_shift

    @property
    def min_distance(self) -> float:
        """Sync-D of this video."""
        return float(self.mean_distances.min())

    @property
    def confidence(self) -> float:
        """Sync-C of this video."""
        return float(np.median(self.mean_distances) - self.mean_distances.min())


def offset_distances(video: torch.Tensor, audio: torch.Tensor, max_offset: int = 15) -> torch.Tensor:
    """D[i, k] for k = -max_offset..max_offset: (T, 2 * max_offset + 1), on the inputs' device."""
    if video.dim() != 2 or audio.shape != video.shape:
        raise ValueError(f"video and audio embeddings must both be (T, D), got {tuple(video.shape)} and "
                         f"{tuple(audio.shape)}")
    if max_offset < 0:
        raise ValueError(f"max_offset must be >= 0, got {max_offset}")
    frames = len(video)
    padded = torch.nn.functional.pad(audio, (0, 0, max_offset, max_offset))
    # column j holds shift k = j - K: padded[i + j] = a_(i + j - K). One shift at a time keeps the
    # memory at (T, D) instead of (T, 2K + 1, D) (a minute of video: ~1500 x 31 x 1024 values).
    columns = [(video - padded[j:j + frames] + PAIRWISE_EPS).norm(dim=1) for j in range(2 * max_offset + 1)]
    return torch.stack(columns, dim=1)


def search_offsets(video: torch.Tensor | np.ndarray, audio: torch.Tensor | np.ndarray,
                   max_offset: int = 15) -> OffsetSearch:
    """The offset search of one video (module docstring); embeddings (T, D) per video frame."""
    video = torch.as_tensor(video, dtype=torch.float64)
    audio = torch.as_tensor(audio, dtype=torch.float64).to(video.device)
    if len(video) == 0:
        raise ValueError("no frames to search offsets on")
    distances = offset_distances(video, audio, max_offset)
    return OffsetSearch(shifts=np.arange(-max_offset, max_offset + 1),
                        mean_distances=distances.mean(dim=0).cpu().numpy(),
                        frame_distances=distances.cpu().numpy())
