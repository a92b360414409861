"""Small statistics the world measurer's check and the world metrics share: Pearson r, lagged r, ROC-AUC.

Hand-written (a few lines each) so that their conventions are explicit: NaN where a figure is
undefined (a constant series, no pairs of one kind) rather than a warning and a silent 0, and the
lag sign of ``world_lip_sync`` fixed here once.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equal-length series in float64; NaN when either is constant or
    has fewer than 2 values."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"pearson needs two 1-d series of one length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a @ a) * (b @ b))
    # relative tolerance: a series constant up to float rounding has no correlation to speak of
    if norm <= 1e-12 * max(1.0, float(np.abs(a).max() * np.abs(b).max()) * len(a)):
        return float("nan")
    return float(np.clip((a @ b) / norm, -1.0, 1.0))


def lagged_correlations(truth: np.ndarray, measured: np.ndarray, max_lag: int,
                        min_overlap: int = 3) -> dict[int, float]:
    """Pearson r of ``measured`` shifted against ``truth`` for each lag in -max_lag..max_lag.

    Sign: at lag ``k`` the measured frame ``t + k`` is paired with truth frame ``t``, so a positive
    lag means the video lags the audio (the mouth opens ``k`` frames after the speech says so).
    Both series are first cut to the shorter length; a lag leaving fewer than ``min_overlap``
    pairs gets NaN.
    """
    n = min(len(truth), len(measured))
    truth, measured = np.asarray(truth, np.float64)[:n], np.asarray(measured, np.float64)[:n]
    out: dict[int, float] = {}
    for lag in range(-max_lag, max_lag + 1):
        if n - abs(lag) < min_overlap:
            out[lag] = float("nan")
        elif lag >= 0:
            out[lag] = pearson(truth[:n - lag], measured[lag:])
        else:
            out[lag] = pearson(truth[-lag:], measured[:n + lag])
    return out


def best_lag(correlations: dict[int, float]) -> tuple[int, float]:
    """The lag with the highest finite r, and that r; ties go to the smaller |lag|, then the
    negative one. (0, NaN) when no lag has a finite r."""
    order = sorted(correlations, key=lambda lag: (abs(lag), lag))
    finite = [lag for lag in order if np.isfinite(correlations[lag])]
    if not finite:
        return 0, float("nan")
    best = max(finite, key=lambda lag: correlations[lag])  # max keeps the first of equal values
    return best, correlations[best]


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive`` (the
    Mann-Whitney U statistic over n_pos * n_neg, ties counting one half); NaN without both kinds."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks: a tie between a positive and a negative counts 1/2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
