"""The manual-override study's figures (``memo_zoo.tasks.override``): what share of frames read as
the requested label, as what else they read, and how the measured expression follows a schedule.

Pure numpy, plus matplotlib for the two plots (files only, the Agg backend). The per-frame labels
come from the world expression metric's ``expression_measured`` series. A label index outside
0..labels-1 (the study writes -1 for a frame no schedule segment covers) is left out of the counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def confusion(requested: Sequence[np.ndarray], measured: Sequence[np.ndarray], labels: int) -> np.ndarray:
    """Counts (labels, labels): row = requested label, column = measured label, over every frame of
    every video (``requested[k]``, ``measured[k]``: per-frame label indices of video k)."""
    counts = np.zeros((labels, labels), np.int64)
    for wanted, read in zip(requested, measured):
        n = min(len(wanted), len(read))
        wanted, read = np.asarray(wanted[:n], np.int64), np.asarray(read[:n], np.int64)
        keep = (read >= 0) & (read < labels) & (wanted >= 0) & (wanted < labels)
        np.add.at(counts, (wanted[keep], read[keep]), 1)
    return counts


def row_shares(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total (a row with no frames stays NaN: nothing was asked for)."""
    totals = counts.sum(1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.nan)


def override_accuracy(counts: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean over the requested labels of the share read as requested, that share per label):
    the mean of the matrix's diagonal of row shares, labels never requested left out."""
    shares = row_shares(counts)
    per_label = np.diag(shares)
    asked = ~np.isnan(per_label)
    return (float(per_label[asked].mean()) if asked.any() else float("nan")), per_label


def read_as_audio(requested: np.ndarray, measured: np.ndarray, audio: np.ndarray, expressive: np.ndarray) -> float:
    """Share of the frames read as the driving audio's own emotion, among the expressive frames
    (``expressive``: truth intensity high enough to count) where another label was requested."""
    n = min(len(requested), len(measured), len(audio), len(expressive))
    other = (np.asarray(requested[:n]) != np.asarray(audio[:n])) & np.asarray(expressive[:n], bool)
    if not other.any():
        return float("nan")
    return float(np.mean(np.asarray(measured[:n])[other] == np.asarray(audio[:n])[other]))


def segment_accuracy(requested: np.ndarray, measured: np.ndarray) -> list[tuple[int, int, int, float]]:
    """(requested label, first frame, end frame, share read as it) for each run of equal requests."""
    n = min(len(requested), len(measured))
    requested, measured = np.asarray(requested[:n]), np.asarray(measured[:n])
    out, start = [], 0
    for index in range(1, n + 1):
        if index == n or requested[index] != requested[start]:
            out.append((int(requested[start]), start, index, float(np.mean(measured[start:index] == requested[start]))))
            start = index
    return out


def plot_confusion(counts: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    """The row-share matrix as a heat map with each cell's percentage written in it."""
    plt = _pyplot()
    shares = row_shares(counts)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    image = ax.imshow(np.nan_to_num(shares), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("measured expression (world measurer)")
    ax.set_ylabel("requested label")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if not np.isnan(shares[i, j]) and shares[i, j] >= 0.005:
                ax.text(j, i, f"{100 * shares[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="black" if shares[i, j] > 0.6 else "white")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the requested label's frames")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_schedule(requested: np.ndarray, measured: np.ndarray, fps: float, labels: Sequence[str], path: Path,
                  title: str) -> Path:
    """Requested label over time (a step line) and the measured label of every frame (dots)."""
    plt = _pyplot()
    n = min(len(requested), len(measured))
    time = np.arange(n) / fps
    fig, ax = plt.subplots(figsize=(9.6, 3.6), dpi=110)
    ax.step(time, requested[:n], where="post", color="tab:blue", linewidth=2.5, alpha=0.6, label="requested")
    hit = measured[:n] == requested[:n]
    ax.scatter(time[hit], measured[:n][hit], s=9, color="tab:green", label="measured (= requested)", zorder=3)
    ax.scatter(time[~hit], measured[:n][~hit], s=9, color="tab:red", label="measured (other)", zorder=3)
    for label, start, end, share in segment_accuracy(requested, measured):
        ax.text((start + end) / 2 / fps, len(labels) - 0.4, f"{labels[label]}: {100 * share:.0f} %",
                ha="center", fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.7, len(labels) - 0.1)
    ax.set_xlabel("seconds")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from memo_zoo.atomic import write_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda temp: fig.savefig(temp, format="png"))
    _pyplot().close(fig)
    return path
