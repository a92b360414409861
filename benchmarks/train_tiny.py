"""Train the tiny MEMO network with recipes/train_tiny.yaml and report whether the loss falls.

Runs the recipe in this process (``memo_zoo.runner.run_recipe``, MLflow store in the working
directory), then prints a markdown table: steps, global batch, the mean loss of the first and of
the last ``--window`` steps (the per-step loss is the velocity MSE of spec L1 on the batch's fresh
noise and times, so single steps are noisy), samples/s of the training steps, wall time of the
training and of the whole run (world generation and frame decoding included on a first run).

    .venv/bin/python benchmarks/train_tiny.py                        # the recipe as shipped
    .venv/bin/python benchmarks/train_tiny.py task.steps=100         # any recipe override
    .venv/bin/python benchmarks/train_tiny.py --threads 2 --workdir /tmp/tiny   # default: 1 thread

Each run writes its checkpoints under <workdir>/checkpoints/train-tiny-<time>/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def registry():
    """The installed plugins; ``train`` (and the encoders / talking_world) registered from their
    modules when the installed entry points predate them."""
    import importlib

    from memo_zoo.plugin import ComponentSpec, hookimpl
    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.train.config import TrainConfig

    class TrainTask:
        @hookimpl
        def task_components(self):
            from memo_zoo.tasks import train

            return [ComponentSpec("train", TrainConfig, train.build, "train the MEMO network")]

    installed = load_registry()
    extra = []
    if "train" not in installed.kinds("task"):
        extra.append(("train_task", TrainTask()))
    for slot, kind, module in (("audio_encoder", "log_mel", "memo_zoo_plugins.audio_encoder.plugin"),
                               ("image_encoder", "conv", "memo_zoo_plugins.image_encoder.plugin"),
                               ("dataset", "talking_world", "memo_zoo_plugins.datasets.talking_world.plugin")):
        if kind not in installed.kinds(slot):
            extra.append((module, importlib.import_module(module)))
    return load_registry(extra_plugins=extra) if extra else installed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. task.steps=100")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "train_tiny.yaml")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: the tiny net's ops are too small to split, and two "
                             "threads fight over shared cores)")
    parser.add_argument("--window", type=int, default=20, help="steps averaged for the start / end loss")
    parser.add_argument("--workdir", type=Path, default=None, help="where mlflow.db and checkpoints go")
    args = parser.parse_args()

    import torch
    from mlflow import MlflowClient

    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo.runner import run_recipe

    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="train_tiny_"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    reg = registry()
    name = f"train-tiny-{time.strftime('%Y%m%d-%H%M%S')}"
    loaded = load_recipe(args.recipe, reg, [*args.overrides, f"task.out_dir=checkpoints/{name}", "task.log_every=1"])
    task = loaded.recipe.task
    start = time.perf_counter()
    outcome = run_recipe(loaded, reg, workdir=workdir)
    wall = time.perf_counter() - start
    client = MlflowClient(outcome.tracking_uri)
    history = sorted((m.step, m.value) for m in client.get_metric_history(outcome.run_id, "loss"))
    speeds = [m.value for m in client.get_metric_history(outcome.run_id, "samples_per_s")]
    summary = client.get_run(outcome.run_id).data.metrics
    losses = [v for _, v in history]
    window = min(args.window, max(1, len(losses) // 2))
    first, last = statistics.fmean(losses[:window]), statistics.fmean(losses[-window:])
    global_batch = task.batch_size * task.grad_accumulation
    train_seconds = sum(global_batch / s for s in speeds if s > 0)
    print(f"recipe {args.recipe.name} {' '.join(args.overrides)}; torch threads {torch.get_num_threads()}; "
          f"run {outcome.run_id}; workdir {workdir}\n")
    print("| steps | global batch | loss first {w} | loss last {w} | change | samples/s | train s | run wall s |"
          .format(w=window))
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {len(losses)} | {global_batch} | {first:.4f} | {last:.4f} | {100 * (last - first) / first:+.1f}% | "
          f"{len(losses) * global_batch / train_seconds:.1f} | {train_seconds:.0f} | {wall:.0f} |")
    print(f"\ndropped samples (L5): {summary.get('dropped_samples_total', 0):.0f}")


if __name__ == "__main__":
    main()
