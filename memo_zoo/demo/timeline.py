"""The emotion timeline: which label each generated segment used, drawn as one bar per clip.

Made from ``GenerationResult.emotion_schedule`` (a label per clip, E5, and whether it was detected,
given or scheduled), so the picture shows what generation did, not what the page asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memo_zoo.atomic import write_atomically

# One colour per label name, stable across videos (tab10 order, 'none' grey).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
NONE_COLOUR = "#9e9e9e"


def label_colour(label: str, labels: tuple[str, ...]) -> str:
    if label in labels:
        return COLOURS[labels.index(label) % len(COLOURS)]
    return NONE_COLOUR


def schedule_table(schedule: list[dict[str, Any]]) -> str:
    """The schedule as Markdown rows, consecutive clips of one label merged."""
    rows = ["| from (s) | to (s) | emotion | source |", "| --- | --- | --- | --- |"]
    for start, end, label, source in merged(schedule):
        rows.append(f"| {start:.2f} | {end:.2f} | {label} | {source} |")
    return "\n".join(rows)


def merged(schedule: list[dict[str, Any]]) -> list[tuple[float, float, str, str]]:
    spans: list[tuple[float, float, str, str]] = []
    for entry in schedule:
        start, end, label, source = float(entry["start_s"]), float(entry["end_s"]), str(entry["label"]), \
            str(entry.get("source", ""))
        if spans and spans[-1][2] == label and spans[-1][3] == source:
            spans[-1] = (spans[-1][0], end, label, source)
        else:
            spans.append((start, end, label, source))
    return spans


def draw_timeline(schedule: list[dict[str, Any]], labels: tuple[str, ...], path: Path) -> Path:
    """A PNG of the schedule: time on x, one coloured span per run of one label, written atomically."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    from matplotlib.figure import Figure

    spans = merged(schedule)
    figure = Figure(figsize=(8, 1.6), dpi=100)
    axes = figure.add_subplot()
    for start, end, label, _ in spans:
        axes.barh(0, end - start, left=start, height=0.8, color=label_colour(label, labels), edgecolor="white")
        axes.text((start + end) / 2, 0, label, ha="center", va="center", fontsize=9, color="white",
                  fontweight="bold", clip_on=True)
    axes.set_yticks([])
    axes.set_xlim(0, max((end for _, end, _, _ in spans), default=1.0))
    axes.set_xlabel("seconds")
    sources = sorted({source for _, _, _, source in spans})
    axes.set_title(f"emotion per segment ({', '.join(sources)})", fontsize=10)
    figure.tight_layout()
    return write_atomically(path, lambda temp: figure.savefig(temp, format="png"))
