"""Training throughput on 1 and 2 processes of this machine (issue 21, docs/scale.md).

Runs ``memo-zoo train RECIPE --num-processes N`` (DDP over gloo on CPU; ``--config-file`` instead
launches through ``accelerate launch`` with that file) for each N in ``--processes``, each from
scratch into its own folder under ``--workdir`` with its own MLflow store, and prints a markdown
table of the training's samples/s: the mean of MLflow's ``samples_per_s`` over the logged windows
after the first (the first holds the start-up: data preparation, the first step's allocations).
Each process uses ``--threads`` torch threads, so N processes use N x threads cores.

    .venv/bin/python benchmarks/train_scale.py                      # train_tiny.yaml, 60 steps, 1 and 2 processes
    .venv/bin/python benchmarks/train_scale.py --steps 100 --config-file recipes/launch/cpu_gloo.yaml

The global batch grows with N (``task.batch_size`` is per process), so samples/s compares the
throughput of the same per-process work, as data parallelism is meant to scale it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def train(recipe: Path, workdir: Path, processes: int, steps: int, threads: int, log_every: int,
          config_file: Path | None) -> tuple[float, float]:
    """(mean samples/s after the first logged window, wall seconds of the command)."""
    from mlflow import MlflowClient

    folder = workdir / f"p{processes}"
    folder.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{folder / 'mlflow.db'}"
    command = [sys.executable, "-m", "memo_zoo", "train", str(recipe), f"task.steps={steps}",
               f"task.log_every={log_every}", f"task.checkpoint_every={steps}", f"task.out_dir={folder / 'ck'}",
               f"tracking.uri={store}", "tracking.experiment=train-scale"]
    command += ["--config-file", str(config_file), "--num-processes", str(processes)] if config_file else \
        ["--num-processes", str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MEMO_ZOO_PROGRESS": "0"}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=folder)
    wall = time.perf_counter() - started
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("train-scale")
    run = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    speeds = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "samples_per_s"),
                                      key=lambda m: m.step)]
    if len(speeds) < 2:
        raise SystemExit(f"{processes} process(es): only {len(speeds)} logged window(s); raise --steps")
    return statistics.mean(speeds[1:]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "train_tiny.yaml")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--config-file", type=Path, default=None,
                        help="an accelerate config file: launch through accelerate instead of memo-zoo's launcher")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/memo-zoo-train-scale"))
    args = parser.parse_args()

    rows = []
    for processes in args.processes:
        speed, wall = train(args.recipe.resolve(), args.workdir.resolve(), processes, args.steps, args.threads,
                            args.log_every, args.config_file.resolve() if args.config_file else None)
        rows.append((processes, speed, wall))
    base = rows[0][1]
    print(f"\n{args.recipe.name}, {args.steps} steps, {args.threads} thread(s) per process, "
          f"{os.cpu_count()} CPUs\n")
    print("| processes | samples/s (after the first window) | vs first row | command wall s |")
    print("|---:|---:|---:|---:|")
    for processes, speed, wall in rows:
        print(f"| {processes} | {speed:.1f} | {speed / base:.2f}x | {wall:.0f} |")


if __name__ == "__main__":
    main()
