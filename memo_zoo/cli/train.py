"""``memo-zoo train RECIPE [key=value ...] [--num-processes N | --config-file FILE [--machine-rank R]
[--main-process-ip ADDR] [--main-process-port PORT]] [--resume] [--variant NAME]``.

A core command (``memo_zoo.cli.app.core_commands``). The recipe's task must be ``train``; the
overrides are the same dotted ``key=value`` pairs as ``memo-zoo run``. With ``--num-processes N > 1``
it starts N ranks on this machine (DDP: gloo on CPU, NCCL on GPUs; only rank 0 writes to MLflow and
checkpoints); under ``accelerate launch`` or ``torchrun`` it is one rank of their job. ``--config-file``
re-runs it under ``accelerate launch`` with that config (multi-node DDP, DeepSpeed ZeRO-2:
``recipes/launch/``; ``memo_zoo.cli.launch.launch_with_config``). ``--resume`` continues from the
newest checkpoint in the task's out_dir, also on another number of processes when
processes x task.grad_accumulation stays the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from memo_zoo.plugin.types import CommandSpec


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="recipe YAML file with task: {kind: train}")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. task.steps=500 task.batch_size=8 (values are YAML)")
    parser.add_argument("--num-processes", type=int, default=None, metavar="N",
                        help="training processes on this machine (one per GPU; on CPU they share the cores; default "
                             "1); with --config-file it replaces the num_processes of a one-machine file")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in task.out_dir (same loss curve as an unbroken run)")
    parser.add_argument("--variant", help="train only this variant of the recipe's sweep")
    parser.add_argument("--config-file", type=Path, metavar="FILE",
                        help="an accelerate config file (recipes/launch/: multi-node DDP, DeepSpeed ZeRO-2, CPU "
                             "gloo): re-runs this command under accelerate launch with it; on a cluster run the "
                             "same command on every node with its --machine-rank")
    parser.add_argument("--machine-rank", type=int, metavar="R",
                        help="with --config-file: this node's rank (0 = the main node; SLURM: $SLURM_NODEID)")
    parser.add_argument("--main-process-ip", metavar="ADDR",
                        help="with --config-file: the main node's address on the cluster's PRIVATE network")
    parser.add_argument("--main-process-port", type=int, metavar="PORT",
                        help="with --config-file: the rendezvous port on the main node (keep it off public networks)")


def _run(args: argparse.Namespace) -> int:
    from memo_zoo.cli.launch import AccelerateLaunch, TrainSpec, train_command
    from memo_zoo.errors import MemoZooError

    spec = TrainSpec(recipe=args.recipe, overrides=tuple(args.overrides), variant=args.variant, resume=args.resume,
                     workdir=Path.cwd())
    node = (args.machine_rank, args.main_process_ip, args.main_process_port)
    if args.config_file is None:
        if any(value is not None for value in node):
            raise MemoZooError("--machine-rank, --main-process-ip and --main-process-port go with --config-file")
        return train_command(spec, 1 if args.num_processes is None else args.num_processes)
    # With a config file, --num-processes (when given) replaces the file's num_processes on one machine.
    return train_command(spec, 1, AccelerateLaunch(args.config_file, *node, num_processes=args.num_processes))


TRAIN = CommandSpec(
    name="train",
    help="train the MEMO network of a recipe (task: train), on one or more processes, resumably",
    description="Run a `task: {kind: train}` recipe. --num-processes N starts N DDP ranks here (only rank 0 "
                "logs to MLflow); --config-file runs it under accelerate launch (many nodes, DeepSpeed ZeRO-2); "
                "--resume continues from the newest checkpoint with the same loss curve.",
    configure=_configure,
    run=_run,
    example="memo-zoo train recipes/train_tiny.yaml task.steps=600 --num-processes 2",
)

