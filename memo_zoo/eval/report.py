"""The comparison report of an experiment: a table and plots per variant, from MLflow alone (issue 7).

``report_run(client, run_id, out_dir)`` reads a parent run's nested variant runs (or a single
run, as a one-variant report) from the tracking store, and writes into ``out_dir``:

- ``report.md`` and ``report.html``: the variants' evaluation figures side by side (the best
  value of each figure in bold where its direction is known), the runs' status, the metrics
  that could not run and why, and the plots;
- ``metrics_per_variant.png``: one bar chart per figure, a bar per variant;
- ``identity_over_time.png``: the world identity similarity to the portrait over the longest
  held-out video, one line per variant (1 s moving mean): MEMO's memory claim (spec §0, Fig. 10);
- ``background_over_time.png``: the same for the ``background`` metric's colour error against the
  portrait (whether a long video keeps the portrait's background, T6);
- ``mouth_sync.png``: the measured mouth opening of each variant's video against the truth of
  the driving audio over its first seconds (lip sync, spec §0);

and, with ``log_to``, logs them as artifacts of that run with the table as ``comparison.json``
(``mlflow.log_table``, shown by MLflow's UI). Everything comes from the runs' metrics and their
``series.npz`` artifacts, so ``memo-zoo report RUN_ID`` can rebuild a report at any time.

Several seeds per variant (``task.seeds``; the runner tags each replicate run ``memo_zoo.seed``):
the runs are grouped by variant (``summarise_seeds``) and every figure becomes the mean over the
variant's seeds with its spread, the sample standard deviation over seeds (ddof 1: the seeds are a
sample of the training noise; unlike the min-max range it does not grow with the number of seeds,
so the rule below means the same with 2 seeds or 5). ``beyond_spread`` flags a variant whose mean
differs from the first (baseline) variant's by more than the larger of the two spreads,
``|mean - baseline mean| > max(std, baseline std)``: a screening rule, not a significance test
(with two seeds a std rests on one difference). ``comparison.json`` then has, per figure, the
mean, ``<figure>_std`` and ``<figure>_beyond_spread``; the documents show ``mean ± std`` with
a dagger for the flag, and the bar plots error bars of one std. Without the tag (one seed) the
report is what it always was.
"""

from __future__ import annotations

import html
import math
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memo_zoo.atomic import write_text_atomically
from memo_zoo.errors import MemoZooError
from memo_zoo.eval.runner import SERIES_FILE

EVAL_PREFIX = "eval/"
PARENT_TAG = "mlflow.parentRunId"
SEED_TAG = "memo_zoo.seed"  # set by memo_zoo.runner on each replicate of a variant (task.seeds > 1)
BEYOND_MARK = "\u2020"  # dagger: the difference from the baseline exceeds the spread
# Figures whose better direction is known: +1 higher is better, -1 lower is better, 0 nearer zero.
DIRECTIONS: dict[str, int] = {
    "lip_sync_r": 1, "lip_sync_best_r": 1, "lip_sync_lag": 0, "world_identity": 1, "world_identity_first": 1,
    "world_identity_last": 1, "world_identity_drift": 0, "world_expression_acc": 1, "world_expression_clip": 1,
    "world_fd": -1, "fid": -1, "fvd": -1, "sync_c": 1, "sync_d": -1, "identity": 1, "identity_drift": 0,
    "efid": -1, "train_loss": -1, "seconds_per_frame": -1, "evaluations_per_frame": -1, "background_error": -1,
    "background_error_first": -1, "background_error_last": -1, "background_error_drift": 0,
    "override_expression_acc": 1, "override_read_as_audio": -1, "override_schedule_acc": 1,
    "override_lip_sync_r": 1, "override_world_identity": 1,
}
OVERRIDE_PREFIX = "override/"  # the manual-override study's figures (memo_zoo.tasks.override)
# Of the study's figures, the ones the comparison shows (the per-label shares stay in each run).
OVERRIDE_SHOWN = ("expression_acc", "read_as_audio", "schedule_acc", "lip_sync_r", "world_identity")
# Per-time-bin figures are plotted as curves, not as table columns.
_HIDDEN = ("identity_bin", "wall_seconds")


def _bookkeeping(key: str) -> bool:
    """Counts (frames measured, window lengths) say how a figure was taken, not how good a variant is;
    they stay in each run's per_video.json and metrics, out of the comparison."""
    return key == "frames" or key.endswith("_frames") or key.endswith("_window")
MOUTH_SECONDS = 8.0


@dataclass
class VariantResult:
    name: str
    run_id: str
    status: str
    figures: dict[str, float]
    fps: float | None = None
    series: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: str = ""
    seed: int | None = None  # the replicate's seed (task.seeds > 1); None for a one-seed run


@dataclass
class SeededVariant:
    """One variant over its seeds: ``result`` holds the mean figures and mean curves (tabled and
    plotted like one run), ``runs`` the replicates by seed, ``spread`` each figure's sample std over
    seeds and ``beyond`` whether it differs from the baseline by more than the spread (None: the
    baseline itself, or a figure without two finite values on both sides)."""

    result: VariantResult
    runs: list[VariantResult]
    spread: dict[str, float]
    beyond: dict[str, bool | None]


@dataclass
class ReportFiles:
    folder: Path
    markdown: Path
    html: Path
    plots: list[Path]
    table: dict[str, list[Any]]


def find_run(client: Any, run_id: str) -> Any:
    """The MLflow run, or a MemoZooError naming the id and the store."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as error:
        raise MemoZooError(f"no MLflow run {run_id!r} in {client.tracking_uri}: {error.message}") from None


def collect(client: Any, run_id: str) -> tuple[Any, list[VariantResult]]:
    """The run and its variants (its nested runs by start time, or itself when it has none)."""
    run = find_run(client, run_id)
    children = client.search_runs([run.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{run_id}'",
                                  order_by=["attributes.start_time ASC"], max_results=1000)
    runs = list(children) or [run]
    return run, [_variant(client, r) for r in runs]


def collect_many(client: Any, run_ids: Sequence[str]) -> tuple[Any, list[VariantResult]]:
    """Several runs' variants as one comparison: an ablation run a variant at a time (``--variant``,
    one parent run each), or again with another training seed (``seed=1``). The first run titles
    the report. A variant found in more than one run is a replicate of that variant, seeded by its
    recipe's ``seed`` param, so the seeded report (mean, spread) compares them."""
    first, merged = None, []
    for run_id in run_ids:
        run, variants = collect(client, run_id)
        first = run if first is None else first
        merged.extend(variants)
    repeated = Counter(v.name for v in merged)
    for variant in merged:
        if repeated[variant.name] > 1 and variant.seed is None:
            seed = client.get_run(variant.run_id).data.params.get("seed")
            if seed is None:
                raise MemoZooError(f"run {variant.run_id} ({variant.name!r}) has no 'seed' param: cannot tell it "
                                   f"from the other runs of {variant.name!r}; list only one of them")
            variant.seed = int(seed)
    seen: dict[tuple[str, int | None], str] = {}
    for variant in merged:
        key = (variant.name, variant.seed)
        if key in seen:
            raise MemoZooError(f"variant {variant.name!r} with seed {variant.seed} is in runs {seen[key]} and "
                               f"{variant.run_id}: list only one of them")
        seen[key] = variant.run_id
    return first, merged


def _variant(client: Any, run: Any) -> VariantResult:
    tags = run.data.tags
    figures = {key[len(EVAL_PREFIX):]: value for key, value in run.data.metrics.items()
               if key.startswith(EVAL_PREFIX) and not any(h in key for h in _HIDDEN)
               and not _bookkeeping(key[len(EVAL_PREFIX):])}
    # Training and speed beside the evaluation: a variant that is better only because it trained to a
    # lower loss, or that is slower, should be visible in the same table.
    for source, name in (("loss", "train_loss"), ("gen/seconds_per_frame", "seconds_per_frame"),
                         ("gen/evaluations_per_frame", "evaluations_per_frame")):
        if source in run.data.metrics:
            figures[name] = run.data.metrics[source]
    for name in OVERRIDE_SHOWN:  # present when the experiment ran the override study (task.override)
        if OVERRIDE_PREFIX + name in run.data.metrics:
            figures[f"override_{name}"] = run.data.metrics[OVERRIDE_PREFIX + name]
    series: dict[str, np.ndarray] = {}
    names = {item.path for item in client.list_artifacts(run.info.run_id)}
    if SERIES_FILE in names:
        with tempfile.TemporaryDirectory() as folder:
            local = client.download_artifacts(run.info.run_id, SERIES_FILE, folder)
            with np.load(local) as data:
                series = {key: data[key] for key in data.files}
    fps = tags.get("memo_zoo.experiment.fps")
    seed = tags.get(SEED_TAG)
    return VariantResult(name=tags.get("memo_zoo.variant") or tags.get("mlflow.runName", run.info.run_id),
                         run_id=run.info.run_id, status=run.info.status, figures=figures,
                         fps=float(fps) if fps else None, series=series,
                         skipped=tags.get("memo_zoo.eval.skipped", ""), seed=int(seed) if seed else None)


def comparison_table(variants: list[VariantResult]) -> dict[str, list[Any]]:
    columns = sorted({key for v in variants for key in v.figures})
    table: dict[str, list[Any]] = {"variant": [v.name for v in variants], "status": [v.status for v in variants]}
    for column in columns:
        table[column] = [v.figures.get(column, float("nan")) for v in variants]
    return table


# ---- several seeds per variant ------------------------------------------------------------------


def _finite(values: list[float]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def seed_mean(values: list[float]) -> float:
    """The mean over the seeds that have the figure (nan when none has)."""
    finite = _finite(values)
    return float(np.mean(finite)) if finite else float("nan")


def seed_spread(values: list[float]) -> float:
    """The sample standard deviation (ddof 1) over the seeds that have the figure; nan below two."""
    finite = _finite(values)
    return float(np.std(finite, ddof=1)) if len(finite) >= 2 else float("nan")


def beyond_spread(mean: float, spread: float, baseline_mean: float, baseline_spread: float) -> bool | None:
    """``|mean - baseline mean| > max(spread, baseline spread)`` (module docstring); None when a
    value is missing, as a figure measured on one seed has no spread to compare with."""
    values = (mean, spread, baseline_mean, baseline_spread)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    return abs(mean - baseline_mean) > max(spread, baseline_spread)


def _mean_series(runs: list[VariantResult]) -> dict[str, np.ndarray]:
    """Each curve's frame-by-frame mean over the seeds that have it (cut to the shortest)."""
    keys = sorted({key for r in runs for key in r.series})
    means = {}
    for key in keys:
        curves = [np.asarray(r.series[key], np.float64) for r in runs if key in r.series]
        length = min(len(c) for c in curves)
        means[key] = np.mean([c[:length] for c in curves], axis=0)
    return means


def _joined(texts: list[str], separator: str) -> str:
    return separator.join(dict.fromkeys(t for t in texts if t))


def summarise_seeds(variants: list[VariantResult]) -> list[SeededVariant]:
    """The runs grouped by variant (in order of first appearance: the first is the baseline), each
    group's figures as mean and spread over its seeds and flagged against the baseline."""
    groups: dict[str, list[VariantResult]] = {}
    for v in variants:
        groups.setdefault(v.name, []).append(v)
    summaries = []
    for name, runs in groups.items():
        runs = sorted(runs, key=lambda r: -1 if r.seed is None else r.seed)
        columns = sorted({key for r in runs for key in r.figures})
        values = {c: [r.figures.get(c, float("nan")) for r in runs] for c in columns}
        fps = next((r.fps for r in runs if r.fps), None)
        result = VariantResult(name=name, run_id=runs[0].run_id, status=_joined([r.status for r in runs], "/"),
                               figures={c: seed_mean(values[c]) for c in columns}, fps=fps,
                               series=_mean_series(runs), skipped=_joined([r.skipped for r in runs], "; "))
        summaries.append(SeededVariant(result, runs, {c: seed_spread(values[c]) for c in columns}, {}))
    baseline = summaries[0] if summaries else None
    for summary in summaries[1:]:
        summary.beyond = {c: beyond_spread(m, summary.spread[c], baseline.result.figures.get(c, float("nan")),
                                           baseline.spread.get(c, float("nan")))
                          for c, m in summary.result.figures.items()}
    return summaries


def _seed_list(summary: SeededVariant) -> str:
    return ", ".join("-" if r.seed is None else str(r.seed) for r in summary.runs)


def seeded_table(summaries: list[SeededVariant]) -> dict[str, list[Any]]:
    """``comparison.json`` with several seeds: per figure its mean, ``_std`` and ``_beyond_spread``."""
    columns = sorted({key for s in summaries for key in s.result.figures})
    table: dict[str, list[Any]] = {"variant": [s.result.name for s in summaries],
                                   "status": [s.result.status for s in summaries],
                                   "seeds": [_seed_list(s) for s in summaries]}
    for column in columns:
        table[column] = [s.result.figures.get(column, float("nan")) for s in summaries]
        table[f"{column}_std"] = [s.spread.get(column, float("nan")) for s in summaries]
        table[f"{column}_beyond_spread"] = [s.beyond.get(column) for s in summaries]
    return table


def _best(values: list[float], direction: int | None) -> int | None:
    finite = [(i, v) for i, v in enumerate(values) if isinstance(v, float) and math.isfinite(v)]
    if direction is None or len(finite) < 2 or len({v for _, v in finite}) == 1:
        return None  # nothing to pick between (one variant, or a tie everywhere)
    key = {1: lambda iv: -iv[1], -1: lambda iv: iv[1], 0: lambda iv: abs(iv[1])}[direction]
    return min(finite, key=key)[0]


def _direction(column: str) -> int | None:
    return DIRECTIONS.get(column)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


# ---- plots ------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(variants: list[VariantResult], path: Path,
                 seeded: list[SeededVariant] | None = None) -> Path | None:
    """A bar per variant for each figure; with ``seeded`` (the same variants over several seeds)
    the bars are the means with error bars of one std, and a dagger marks a beyond-spread one."""
    columns = [c for c in comparison_table(variants) if c not in ("variant", "status")]
    if not columns:
        return None
    plt = _pyplot()
    cols = min(3, len(columns))
    rows = math.ceil(len(columns) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    names = [v.name for v in variants]
    for ax, column in zip(axes.flat, columns):
        values = [v.figures.get(column, float("nan")) for v in variants]
        heights = [0 if not math.isfinite(x) else x for x in values]
        if seeded is None:
            bars = ax.bar(range(len(values)), heights, color="#4c72b0")
        else:
            errors = [s.spread.get(column, float("nan")) for s in seeded]
            bars = ax.bar(range(len(values)), heights, color="#4c72b0",
                          yerr=[e if math.isfinite(e) else 0.0 for e in errors], capsize=3, ecolor="#333333")
        best = _best(values, _direction(column))
        if best is not None:
            bars[best].set_color("#dd8452")
        arrow = {1: " (higher is better)", -1: " (lower is better)", 0: " (nearer 0 is better)"}.get(
            _direction(column), "")
        ax.set_title(column + arrow, fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        for i, value in enumerate(values):
            mark = f" {BEYOND_MARK}" if seeded is not None and seeded[i].beyond.get(column) else ""
            ax.annotate(_fmt(value) + mark, (i, 0 if not math.isfinite(value) else value), ha="center",
                        va="bottom", fontsize=7)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    if seeded is None:
        fig.tight_layout()
    else:
        fig.suptitle(f"mean over seeds, error bar one std; {BEYOND_MARK} differs from {names[0]} by more "
                     "than the spread", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the suptitle
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _moving_mean(values: np.ndarray, width: int) -> np.ndarray:
    width = max(1, min(width, len(values)))
    return np.convolve(values, np.ones(width) / width, mode="valid")


def _longest_video(variants: list[VariantResult], curve: str) -> str | None:
    lengths: dict[str, int] = {}
    for v in variants:
        for key, values in v.series.items():
            video, _, name = key.rpartition("/")
            if name == curve:
                lengths[video] = max(lengths.get(video, 0), len(values))
    return max(sorted(lengths), key=lambda k: lengths[k]) if lengths else None


def plot_over_time(variants: list[VariantResult], path: Path, curve: str, ylabel: str, what: str) -> Path | None:
    """Each variant's per-frame ``curve`` over the longest video that has it (1 s moving mean)."""
    video = _longest_video(variants, curve)
    if video is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for v in variants:
        values = v.series.get(f"{video}/{curve}")
        if values is None or not len(values):
            continue
        fps = v.fps or 25.0
        smooth = _moving_mean(values, int(round(fps)))
        ax.plot((np.arange(len(smooth)) + len(values) - len(smooth)) / fps, smooth, label=v.name, lw=1.2)
    ax.set_xlabel("seconds into the video")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{what} over time, held-out video {video} (1 s moving mean)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_identity(variants: list[VariantResult], path: Path) -> Path | None:
    return plot_over_time(variants, path, "identity", "identity cosine to the portrait", "identity")


def plot_background(variants: list[VariantResult], path: Path) -> Path | None:
    return plot_over_time(variants, path, "background_error", "RGB distance to the portrait's corners",
                          "background colour error")


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / (spread if spread > 1e-12 else 1.0)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _zscore(np.asarray(a, np.float64)), _zscore(np.asarray(b, np.float64))
    return float(np.mean(a * b))


def _mouth_title(name: str, measured: np.ndarray, truth: np.ndarray | None, mean_r: float | None) -> str:
    """A mouth panel's title: this video's r over the frames both curves have, and the mean over videos."""
    n = min(len(measured), len(truth)) if truth is not None else 0
    mean = f"{mean_r:.3f} mean over videos" if mean_r is not None and math.isfinite(mean_r) else ""
    if n >= 2:
        own = f"r = {_pearson(measured[:n], truth[:n]):.3f} on this video"
        return f"{name}  ({own}, {mean})" if mean else f"{name}  ({own})"
    return f"{name}  ({mean})" if mean else name


def plot_mouth(variants: list[VariantResult], path: Path, seconds: float = MOUTH_SECONDS) -> Path | None:
    video = _longest_video(variants, "mouth_measured")
    shown = [v for v in variants if f"{video}/mouth_measured" in v.series]
    if video is None or not shown:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 1.7 * len(shown) + 0.6), squeeze=False, sharex=True)
    for ax, v in zip(axes[:, 0], shown):
        fps = v.fps or 25.0
        count = int(round(seconds * fps))
        measured = v.series[f"{video}/mouth_measured"][:count]
        truth = v.series.get(f"{video}/mouth_truth")
        t = np.arange(len(measured)) / fps
        if truth is not None:
            ax.plot(t, _zscore(truth[:len(measured)]), color="#999999", lw=1.0, label="truth (audio-driven)")
        ax.plot(t, _zscore(measured), color="#c44e52", lw=1.2, label="measured on generated frames")
        # The table's lip_sync_r is the mean over videos; the title gives this video's own r (lag 0,
        # whole video) beside it, so a variant that fails only on the long video shows it here.
        title = _mouth_title(v.name, v.series[f"{video}/mouth_measured"], truth, v.figures.get("lip_sync_r"))
        ax.set_title(title, fontsize=9)
        ax.set_yticks([])
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("seconds (mouth opening, each curve standardised)")
    fig.suptitle(f"mouth opening vs the driving audio's truth, held-out video {video}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- documents --------------------------------------------------------------------------------


def _rows(table: dict[str, list[Any]]) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    columns = list(table)
    best = {c: _best(table[c], _direction(c)) for c in columns if c not in ("variant", "status")}
    rows = []
    for i in range(len(table["variant"])):
        rows.append([(_fmt(table[c][i]), best.get(c) == i) for c in columns])
    return columns, rows


def _status(run: Any) -> str:
    # The sweep's own report is written while its parent run is still open: no status to show yet.
    return "" if run.info.status == "RUNNING" else f" ({run.info.status})"


FIGURES_NOTE = ("Figures are means over the held-out videos; bold = best where the direction is known "
                "(see docs/evaluation.md for each figure).")


def _seeded_note(summaries: list[SeededVariant]) -> str:
    baseline = summaries[0].result.name if summaries else ""
    return (f"Figures are means over the held-out videos, then over each variant's seeds, {chr(177)} the "
            "sample standard deviation over seeds; bold = best mean where the direction is known (see "
            f"docs/evaluation.md for each figure). {BEYOND_MARK} = the difference from the first variant "
            f"({baseline}) exceeds the spread: abs(mean - baseline mean) > max(std, baseline std), a screening "
            "rule rather than a significance test. The curves below are the means over seeds.")


def _seeded_rows(summaries: list[SeededVariant], table: dict[str, list[Any]]
                 ) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """The documents' table with several seeds: ``mean ± std`` (and the dagger) per figure."""
    figures = sorted({key for s in summaries for key in s.result.figures})
    best = {c: _best(table[c], _direction(c)) for c in figures}
    rows = []
    for i, summary in enumerate(summaries):
        row = [(summary.result.name, False), (summary.result.status, False), (_seed_list(summary), False)]
        for c in figures:
            mark = f" {BEYOND_MARK}" if summary.beyond.get(c) else ""
            text = f"{_fmt(table[c][i])} {chr(177)} {_fmt(table[f'{c}_std'][i])}{mark}"
            row.append((text, best[c] == i))
        rows.append(row)
    return ["variant", "status", "seeds", *figures], rows


def _markdown(title: str, run: Any, variants: list[VariantResult], table: dict[str, list[Any]],
              plots: list[Path]) -> str:
    columns, rows = _rows(table)
    runs = ", ".join(f"{v.name}: `{v.run_id}`" for v in variants)
    return _markdown_text(title, run, FIGURES_NOTE, columns, rows, runs, variants, plots)


def _markdown_text(title: str, run: Any, note: str, columns: list[str], rows: list[list[tuple[str, bool]]],
                   runs: str, variants: list[VariantResult], plots: list[Path]) -> str:
    lines = [f"# {title}", "", f"MLflow run `{run.info.run_id}`{_status(run)}; rebuild with "
             f"`memo-zoo report {run.info.run_id}`.", "", note, "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"**{text}**" if best else text for text, best in row) + " |")
    lines.append("")
    lines += [f"Variant runs: {runs}.", ""]
    skipped = [f"- {v.name}: {v.skipped}" for v in variants if v.skipped]
    if skipped:
        lines += ["Metrics that could not run (see each run's skipped_metrics.json for the file to provide):", "",
                  *skipped, ""]
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    return "\n".join(lines)


def _html(title: str, run: Any, variants: list[VariantResult], table: dict[str, list[Any]],
          plots: list[Path]) -> str:
    columns, rows = _rows(table)
    return _html_text(title, run, "", columns, rows, variants, plots)


def _html_text(title: str, run: Any, note: str, columns: list[str], rows: list[list[tuple[str, bool]]],
               variants: list[VariantResult], plots: list[Path]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{'<b>' + esc(t) + '</b>' if b else esc(t)}</td>" for t, b in row)
                   + "</tr>" for row in rows)
    skipped = "".join(f"<li>{esc(v.name)}: {esc(v.skipped)}</li>" for v in variants if v.skipped)
    images = "".join(f'<p><img src="{esc(p.name)}" alt="{esc(p.stem)}"></p>' for p in plots)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}img{max-width:100%}</style></head><body>"
            f"<h1>{esc(title)}</h1><p>MLflow run <code>{esc(run.info.run_id)}</code>{esc(_status(run))}; "
            f"rebuild with <code>memo-zoo report {esc(run.info.run_id)}</code>.</p>"
            + (f"<p>{esc(note)}</p>" if note else "")
            + f"<table><tr>{head}</tr>{body}</table>"
            + (f"<p>Metrics that could not run:</p><ul>{skipped}</ul>" if skipped else "")
            + images + "</body></html>")


def write_report(run: Any, variants: list[VariantResult], out_dir: Path) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(v.seed is not None for v in variants):
        return write_seeded_report(run, variants, out_dir)
    title = f"{run.data.tags.get('mlflow.runName', run.info.run_id)}: comparison of {len(variants)} variant(s)"
    table = comparison_table(variants)
    plots = [p for p in (plot_metrics(variants, out_dir / "metrics_per_variant.png"),
                         plot_identity(variants, out_dir / "identity_over_time.png"),
                         plot_background(variants, out_dir / "background_over_time.png"),
                         plot_mouth(variants, out_dir / "mouth_sync.png")) if p is not None]
    markdown, page = out_dir / "report.md", out_dir / "report.html"
    for path, text in ((markdown, _markdown(title, run, variants, table, plots)),
                       (page, _html(title, run, variants, table, plots))):
        write_text_atomically(path, text)
    return ReportFiles(out_dir, markdown, page, plots, table)


def write_seeded_report(run: Any, variants: list[VariantResult], out_dir: Path) -> ReportFiles:
    """The report of variants run with several seeds (module docstring): the same files, each
    figure as mean and spread over seeds, flagged where it differs from the baseline beyond them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = summarise_seeds(variants)
    means = [s.result for s in summaries]
    seeds = max(len(s.runs) for s in summaries)
    title = (f"{run.data.tags.get('mlflow.runName', run.info.run_id)}: comparison of {len(summaries)} variant(s), "
             f"up to {seeds} seed(s) each")
    table = seeded_table(summaries)
    plots = [p for p in (plot_metrics(means, out_dir / "metrics_per_variant.png", seeded=summaries),
                         plot_identity(means, out_dir / "identity_over_time.png"),
                         plot_background(means, out_dir / "background_over_time.png"),
                         plot_mouth(means, out_dir / "mouth_sync.png")) if p is not None]
    columns, rows = _seeded_rows(summaries, table)
    note = _seeded_note(summaries)
    runs = "; ".join(f"{s.result.name}: " + ", ".join(f"seed {'-' if r.seed is None else r.seed} `{r.run_id}`"
                                                      for r in s.runs) for s in summaries)
    markdown, page = out_dir / "report.md", out_dir / "report.html"
    for path, text in ((markdown, _markdown_text(title, run, note, columns, rows, runs, means, plots)),
                       (page, _html_text(title, run, note, columns, rows, means, plots))):
        write_text_atomically(path, text)
    return ReportFiles(out_dir, markdown, page, plots, table)


def report_run(client: Any, run_id: str, out_dir: Path, log_to: Any = None, also: Sequence[str] = ()) -> ReportFiles:
    """Collect, write, and (with ``log_to``, an open TrackedRun) log the report (module docstring);
    ``also``: more runs whose variants join the comparison (``collect_many``)."""
    run, variants = collect_many(client, [run_id, *also])
    files = write_report(run, variants, Path(out_dir))
    if log_to is not None:
        for path in (files.markdown, files.html, *files.plots):
            log_to.log_artifact(path, "report")
        log_to.log_table(files.table, "comparison.json")
    return files
