"""``memo-zoo train RECIPE [key=value ...] [--num-processes N] [--resume] [--variant NAME]``.

A core command (``memo_zoo.cli.app.core_commands``). The recipe's task must be ``train``; the
overrides are the same dotted ``key=value`` pairs as ``memo-zoo run``. With ``--num-processes N > 1``
it starts N ranks on this machine (DDP: gloo on CPU, NCCL on GPUs; only rank 0 writes to MLflow and
checkpoints); under ``accelerate launch`` or ``torchrun`` it is one rank of their job. ``--resume`` continues from the newest checkpoint in the task's out_dir.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from memo_zoo.plugin.types import CommandSpec


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="recipe YAML file with task: {kind: train}")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. task.steps=500 task.batch_size=8 (values are YAML)")
    parser.add_argument("--num-processes", type=int, default=1, metavar="N",
                        help="training processes on this machine (one per GPU; on CPU they share the cores)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in task.out_dir (same loss curve as an unbroken run)")
    parser.add_argument("--variant", help="train only this variant of the recipe's sweep")


def _run(args: argparse.Namespace) -> int:
    from memo_zoo.cli.launch import TrainSpec, train_command

    spec = TrainSpec(recipe=args.recipe, overrides=tuple(args.overrides), variant=args.variant, resume=args.resume,
                     workdir=Path.cwd())
    return train_command(spec, args.num_processes)


TRAIN = CommandSpec(
    name="train",
    help="train the MEMO network of a recipe (task: train), on one or more processes, resumably",
    description="Run a `task: {kind: train}` recipe. --num-processes N starts N DDP ranks here (only rank 0 "
                "logs to MLflow); --resume continues from the newest checkpoint with the same loss curve.",
    configure=_configure,
    run=_run,
    example="memo-zoo train recipes/train_tiny.yaml task.steps=600 --num-processes 2",
)

