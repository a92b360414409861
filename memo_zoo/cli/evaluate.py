"""``memo-zoo evaluate RECIPE --videos DIR [--reference DIR] [--workers N] [--address ADDR]``.

Measures a folder of generated MP4s with the recipe's ``metrics:`` (any task kind: only its
``metrics`` and ``data.dataset`` are read), prints the summary figures and writes them with one row
per video to ``--out`` (default ``DIR/evaluation.json``, written atomically). A core command.

Per video ``NAME.mp4``: the ground truth is ``--reference``'s video of the same stem (any of
mp4, m4v, mov, mkv; every generated video must have one when ``--reference`` is given); the
portrait it was generated from is ``NAME_portrait.png`` beside it when there is one (the
experiment task writes it), else metrics take the ground truth's first frame; the per-frame truth
(world metrics) is read by the recipe's ``data.dataset`` for the clip of that id when the dataset
lists one and can read truth (``--no-truth``: never ask it; talking_world generates its world on
first use). ``--workers N`` > 1 measures contiguous shards on Ray workers (``memo_zoo.eval.sharded``;
``--address`` or ``$RAY_ADDRESS`` for a cluster, else a local one): the same figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from memo_zoo.errors import MemoZooError
from memo_zoo.plugin.types import CommandSpec

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
PORTRAIT_SUFFIX = "_portrait.png"


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="recipe YAML whose metrics: measure the videos")
    parser.add_argument("--videos", type=Path, required=True, help="folder of generated MP4s (NAME.mp4)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="folder of ground-truth videos matched by file stem (FID, FVD and E-FID need them)")
    parser.add_argument("--workers", type=int, default=1,
                        help="Ray workers to shard the videos over (default 1: this process, no Ray)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local cluster on 127.0.0.1)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each worker reserves (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each worker reserves (default 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON with the summary and one row per video (default: VIDEOS/evaluation.json)")
    parser.add_argument("--no-truth", action="store_true",
                        help="do not ask the recipe's data.dataset for the clips' per-frame truth")
    parser.add_argument("--profile", help="apply the recipe's named profile of overrides first")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides (metrics.0.device=cpu)")


def generated_videos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise MemoZooError(f"--videos {folder}: not a folder")
    videos = sorted(folder.glob("*.mp4"))
    if not videos:
        raise MemoZooError(f"--videos {folder}: no .mp4 file in it")
    return videos


def reference_videos(folder: Path | None, videos: list[Path]) -> dict[str, Path]:
    """Stem -> ground-truth video; every generated video must have one when a folder is given."""
    if folder is None:
        return {}
    if not folder.is_dir():
        raise MemoZooError(f"--reference {folder}: not a folder")
    found = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}
    missing = [v.stem for v in videos if v.stem not in found]
    if missing:
        raise MemoZooError(f"--reference {folder} has no video for {len(missing)} generated video(s): "
                           f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} (matched by file stem)")
    return {v.stem: found[v.stem] for v in videos}


def dataset_truth(recipe: Any, registry: Any, stems: list[str]) -> dict[str, Any]:
    """Stem -> per-frame truth arrays, for the stems that are clip ids of the recipe's dataset
    (ids with '/' as the experiment names their files: '__')."""
    from memo_zoo.data.truth import TruthReader

    config = getattr(getattr(recipe, "data", None), "dataset", None)
    if config is None:
        return {}
    if "split" in type(config).model_fields:
        config = config.model_copy(update={"split": "all"})
    dataset = registry.build("dataset", config)
    if not isinstance(dataset, TruthReader):
        return {}
    wanted, truth = set(stems), {}
    for record in dataset.clips():
        stem = record.clip_id.replace("/", "__")
        if stem in wanted and record.truth is not None:
            found = dataset.frame_truth(record)
            if found is not None:
                truth[stem] = dict(found.frames)
    return truth


def _portrait(video: Path) -> Any:
    path = video.with_name(video.stem + PORTRAIT_SUFFIX)
    if not path.is_file():
        return None
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN


def _run(args: argparse.Namespace) -> int:
    from memo_zoo.atomic import write_text_atomically
    from memo_zoo.cli.registry import registry
    from memo_zoo.eval.pairs import FilePair
    from memo_zoo.eval.runner import evaluate
    from memo_zoo.recipe.loader import load_recipe

    if args.workers < 1:
        raise MemoZooError(f"--workers {args.workers}: give 1 or more")
    reg = registry()
    recipe = load_recipe(args.recipe, reg, args.overrides, profile=args.profile).recipe
    if not recipe.metrics:
        raise MemoZooError(f"{args.recipe}: the recipe lists no metrics: (add e.g. metrics: [{{kind: background}}])")
    videos = generated_videos(args.videos)
    references = reference_videos(args.reference, videos)
    truth = {} if args.no_truth else dataset_truth(recipe, reg, [v.stem for v in videos])
    metrics: dict[str, Any] = {}
    for config in recipe.metrics:  # as the experiment task names them: a kind listed twice gets a suffix
        name = config.kind if config.kind not in metrics else f"{config.kind}.{len(metrics)}"
        metrics[name] = reg.build("metric", config)
    pairs = [FilePair(v.stem, v, references.get(v.stem), _portrait(v), truth.get(v.stem)) for v in videos]
    evaluation = evaluate(metrics, pairs, total=len(pairs), workers=args.workers, address=args.address,
                          cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker)
    summary, rows = evaluation.summary(), evaluation.per_video()
    out = args.out or args.videos / "evaluation.json"
    document = {"recipe": str(args.recipe), "videos": str(args.videos),
                "reference": None if args.reference is None else str(args.reference), "workers": args.workers,
                "summary": {k: _finite(v) for k, v in summary.items()},
                "per_video": {video: {k: _finite(v) for k, v in row.items()} for video, row in rows.items()},
                "skipped": evaluation.skipped}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out, json.dumps(document, indent=1))
    print(format_summary(summary))
    for name, reason in evaluation.skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    print(f"{len(rows)} videos measured; per-video figures: {out}", file=sys.stderr)
    return 0


def format_summary(summary: dict[str, float]) -> str:
    """The summary figures as a two-column table, in the comparison report's format (4 significant digits)."""
    width = max([len("figure")] + [len(key) for key in summary])
    lines = [f"{'figure':<{width}}  value", f"{'-' * width}  -----"]
    for key, value in summary.items():
        lines.append(f"{key:<{width}}  {'n/a' if not math.isfinite(value) else format(value, '.4g')}")
    return "\n".join(lines)


EVALUATE = CommandSpec(
    name="evaluate",
    help="measure a folder of generated videos with a recipe's metrics (optionally on Ray workers)",
    description="Measure every NAME.mp4 in --videos with the recipe's metrics: against --reference's video of the "
                "same stem, print the summary and write per-video figures as JSON; --workers N shards the videos "
                "over Ray workers with the same figures.",
    configure=_configure,
    run=_run,
    example="memo-zoo evaluate recipes/experiment_tiny.yaml --videos experiments/out/videos --reference clips/ "
            "--workers 2",
)
