"""Bar chart of the emotion levers (issue 23 item 2; docs/emotion_diagnosis.md sections 10 and 11).

Reads, from an MLflow store, the newest finished run of each variant of
``recipes/emotion_override.yaml`` or ``recipes/ablate_emotion.yaml`` (tag ``memo_zoo.variant``)
and plots per variant: the share of override frames read as the requested label, read as the
clip's own emotion, the schedule's accuracy, and the expression of the held-out video generated
with its true labels; ``--cost`` adds the held-out video's lip sync r and world identity. With
``--seeds`` each bar is the mean over those recipe seeds' runs and a dot marks each seed.

    .venv/bin/python benchmarks/emotion_levers_plot.py --tracking sqlite:///mlflow.db \\
        --out docs/images/emotion_levers.png
    .venv/bin/python benchmarks/emotion_levers_plot.py --tracking sqlite:///mlflow.db --seeds 0 1 --cost \\
        --variants memo expression_guidance_4 expression_guidance_ref_4 --out docs/images/x.png
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

BARS = [("override/expression_acc", "as requested"), ("override/read_as_audio", "clip's own emotion"),
        ("override/schedule_acc", "schedule"), ("eval/world_expression_acc", "true labels (held-out video)")]
COST = [("eval/lip_sync_r", "lip sync r (held-out video)"), ("eval/world_identity", "world identity")]
ORDER = ["memo", "emotion_guidance", "prosody_mismatch", "expression_region", "prosody_mismatch_expression_region",
         "label_only", "expression_region_empty_memory", "label_only_empty_memory", "memory_decoupling",
         "memory_decoupling_guidance", "expression_region_memory_decoupling",
         "expression_region_memory_decoupling_guidance", "expression_region_memory_decoupling_empty_memory"]


def newest_per_variant(tracking: str, experiment: str, seed: int | None = None) -> dict[str, dict[str, float]]:
    """Metrics of the newest finished override run per variant (of recipe seed ``seed`` when given)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"{tracking}: no MLflow experiment named {experiment!r}")
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1000)
    out: dict[str, dict[str, float]] = {}
    for run in runs:
        variant = run.data.tags.get("memo_zoo.variant")
        if seed is not None and run.data.params.get("seed") != str(seed):
            continue
        if variant and variant not in out and "override/expression_acc" in run.data.metrics:
            out[variant] = run.data.metrics
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking", default="sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="memo-zoo")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, help="only runs of this recipe seed (default: the newest of any)")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="bars are the mean over the newest run of each of these recipe seeds, dots the seeds")
    parser.add_argument("--cost", action="store_true", help="also plot lip sync r and world identity")
    parser.add_argument("--variants", nargs="+", help="plot only these variants, in this order (default: all found)")
    parser.add_argument("--title", help="default: what the plot shows, with its seeds")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from memo_zoo.atomic import write_bytes_atomically

    seeds = args.seeds or [args.seed]
    per_seed = [newest_per_variant(args.tracking, args.experiment, seed) for seed in seeds]
    metrics = {v: per_seed[0][v] for v in set.intersection(*(set(found) for found in per_seed))}
    variants = [v for v in ORDER if v in metrics] + sorted(set(metrics) - set(ORDER))
    if args.variants:
        missing = [v for v in args.variants if v not in metrics]
        if missing:
            raise SystemExit(f"{args.tracking}: no finished run with override metrics for {', '.join(missing)} "
                             f"(of every seed in {seeds})")
        variants = args.variants
    if not variants:
        raise SystemExit(f"{args.tracking}: no finished emotion_override variant runs")
    bars = BARS + (COST if args.cost else [])
    x = np.arange(len(variants))
    width = 0.8 / len(bars)
    figure, axis = plt.subplots(figsize=(12, 4.5))
    for k, (key, label) in enumerate(bars):
        values = np.array([[found[v].get(key, np.nan) for v in variants] for found in per_seed])  # seeds x variants
        at = x + (k - (len(bars) - 1) / 2) * width
        axis.bar(at, values.mean(axis=0), width, label=label)
        if len(per_seed) > 1:
            for row in values:
                axis.plot(at, row, "o", color="black", markersize=2.5)
    axis.axhline(1 / 8, color="black", linestyle="--", linewidth=1, label="chance (1/8)")
    axis.set_xticks(x, [v.replace("_", "\n") for v in variants], fontsize=8)
    axis.set_ylabel("share of frames (measurer D)" + ("; r and cosine" if args.cost else ""))
    axis.set_ylim(0, 1)
    axis.set_title(args.title or "emotion levers: what the world measurer reads (" + (
        f"bars: mean of seeds {', '.join(map(str, seeds))}; dots: each seed)" if len(seeds) > 1 else "one training seed each)"))
    axis.legend(fontsize=8, ncol=5, loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_bytes_atomically(args.out, buffer.getvalue())
    print(f"wrote {args.out}: {len(variants)} variants")


if __name__ == "__main__":
    main()
