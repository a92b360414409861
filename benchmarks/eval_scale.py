"""Evaluation throughput on 1 and N Ray workers (issue 21): videos per second, and the same figures.

A talking_world (default here: 6 identities, 3 clips of 4-6 s each, 64 px, 25 fps; generated into
``--root`` once) is measured as if its clips were generated videos (each against itself as the
ground truth, truth read by the dataset) with the metrics that run without downloaded weights:
the four world metrics (a random-init measurer saved in the real file format: throughput does not
depend on the weights, and training one would take a minute) and ``background``. For each worker
count the whole evaluation is timed, actors' start-up and network loading included; the local Ray
cluster is started before the first timing (its start is printed, not counted). The last column
says whether the figures equal those of 1 worker exactly. Prints a markdown table.

    .venv/bin/python benchmarks/eval_scale.py
    .venv/bin/python benchmarks/eval_scale.py --workers 1 2 4 --identities 12
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from memo_zoo.eval.pairs import FilePair
from memo_zoo.eval.runner import evaluate
from memo_zoo.settings import get_settings
from memo_zoo_eval.metrics import background
from memo_zoo_plugins.datasets.talking_world.dataset import TalkingWorld, TalkingWorldConfig
from memo_zoo_plugins.datasets.talking_world.measure import metrics as wm
from memo_zoo_plugins.datasets.talking_world.measure import training
from memo_zoo_plugins.datasets.talking_world.measure.measurer import MeasurerShape, WorldMeasurer
from memo_zoo_plugins.datasets.talking_world.measure.store import save_measurer
from memo_zoo_plugins.datasets.talking_world.world import WorldConfig, generate


def build_metrics(measurer: Path) -> dict:
    options = dict(measurer=str(measurer), device="cpu")
    return {"world_lip_sync": wm.build_lip_sync(wm.WorldLipSyncConfig(**options)),
            "world_identity": wm.build_identity(wm.WorldIdentityConfig(**options)),
            "world_expression": wm.build_expression(wm.WorldExpressionConfig(**options)),
            "world_fd": wm.build_fd(wm.WorldFdConfig(**options)),
            "background": background.build(background.BackgroundConfig())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time (first = 1)")
    parser.add_argument("--identities", type=int, default=6, help="world identities (3 clips each)")
    parser.add_argument("--root", type=Path, default=get_settings().cache_dir / "eval_scale_world")
    args = parser.parse_args()

    world = WorldConfig(root=args.root, identities=args.identities, test_identities=2, clips_per_identity=3,
                        seconds=(4.0, 6.0), long_clips=0, workers=2)
    generate(world, progress=False)
    dataset = TalkingWorld(TalkingWorldConfig(**world.model_dump(), split="all"), progress=False)
    clips = dataset.clips()
    pairs = [FilePair(c.clip_id, c.video, c.video, None, dict(dataset.frame_truth(c).frames)) for c in clips]
    frames = sum(c.frame_count or 0 for c in clips)
    torch.manual_seed(0)
    fields = training.MeasurerReport.model_fields
    report = training.MeasurerReport(**{name: "benchmark" if name == "world" else 0 for name in fields})
    measurer = save_measurer(WorldMeasurer(MeasurerShape()), report, args.root / "random_measurer.safetensors")

    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=max(args.workers), include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    cluster = time.perf_counter() - started
    print(f"{len(clips)} videos, {frames} frames ({world.size} px, {world.fps} fps); {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), torch {torch.__version__}, ray {ray.__version__}; "
          f"local Ray cluster started in {cluster:.1f} s (not counted)\n")
    rows, baseline = [], None
    for workers in args.workers:
        started = time.perf_counter()
        evaluation = evaluate(build_metrics(measurer), pairs, workers=workers, show_progress=False)
        seconds = time.perf_counter() - started
        figures = (repr(evaluation.summary()), repr(evaluation.per_video()))
        baseline = baseline or (figures, seconds)
        rows.append((workers, seconds, len(clips) / seconds, baseline[1] / seconds, figures == baseline[0]))
    print("| workers | videos | seconds | videos/s | speed-up | figures = 1 worker's |")
    print("|---:|---:|---:|---:|---:|:---|")
    for workers, seconds, rate, speedup, same in rows:
        print(f"| {workers} | {len(clips)} | {seconds:.1f} | {rate:.2f} | {speedup:.2f}x | {'yes' if same else 'NO'} |")
    ray.shutdown()


if __name__ == "__main__":
    main()
