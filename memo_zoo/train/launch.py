"""Running ``task: train`` in one process or in N (``memo-zoo train --num-processes N``).

``run_train(spec)`` runs the recipe in THIS process. When the environment names a rank (RANK /
WORLD_SIZE, as ``accelerate launch``, ``torchrun`` or ``launch`` below set them), the process is one
rank of a DDP job: rank 0 runs the recipe through ``memo_zoo.runner.run_recipe`` (the MLflow run,
params, FAILED on error), the other ranks run the same task with no MLflow run at all, so only
rank 0 talks to the tracking store.

``launch(spec, N)`` starts N ranks on this machine with ``torch.multiprocessing`` (spawn: safe with
CUDA), each calling ``run_train``; accelerate then joins them into one process group (NCCL on
GPUs, gloo on CPUs). A failing rank stops the others; Ctrl-C reaches every rank (same process
group), rank 0 saves its checkpoint and the launcher returns 130.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from memo_zoo.errors import USER_ERROR_EXIT_CODE, MemoZooError

INTERRUPTED_EXIT_CODE = 130

# Imported once by the forkserver that forks the ranks (see ``launch``).
PRELOAD = ("torch", "accelerate", "diffusers", "mlflow", "memo_zoo.train.loop", "memo_zoo.tracking.tracker",
           "memo_zoo.cli.registry")


@dataclass(frozen=True)
class TrainSpec:
    """What to train: a recipe file, dotted overrides, one sweep variant, resume or not.

    ``extra_plugins``: ``"module"`` or ``"module:attribute"`` names of plugins to register in every
    rank besides the installed entry points (applications embedding memo-zoo, tests); each is
    imported in the rank, so it must be importable there.
    """

    recipe: Path
    overrides: tuple[str, ...] = ()
    variant: str | None = None
    resume: bool = False
    workdir: Path = field(default_factory=Path.cwd)
    extra_plugins: tuple[str, ...] = ()


def load_plugin(name: str) -> object:
    """The plugin object named ``"module"`` or ``"module:attribute"``."""
    module_name, _, attribute = name.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def registry_for(spec: TrainSpec):
    """The installed plugins plus ``spec.extra_plugins``."""
    from memo_zoo.cli.registry import registry
    from memo_zoo.plugin.manager import load_registry

    if not spec.extra_plugins:
        return registry()
    return load_registry(extra_plugins=[(name, load_plugin(name)) for name in spec.extra_plugins])


def world_size() -> int:
    """Ranks in this job according to the environment (1 outside a launcher)."""
    for key in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(key):
            return int(os.environ[key])
    return 1


def rank() -> int:
    for key in ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        if os.environ.get(key):
            return int(os.environ[key])
    return 0


def run_train(spec: TrainSpec) -> str | None:
    """Train ``spec`` in this process (one rank); returns the MLflow run id on rank 0."""
    from memo_zoo.recipe.loader import load_recipe, validate_document, variant_documents
    from memo_zoo.runner import RunContext, run_recipe
    from memo_zoo.seeding import seed_everything

    registry = registry_for(spec)
    overrides = list(spec.overrides) + (["task.resume=true"] if spec.resume else [])
    loaded = load_recipe(spec.recipe, registry, overrides)
    kind = getattr(loaded.recipe.task, "kind", None)
    if kind != "train":
        raise MemoZooError(f"memo-zoo train needs a recipe with task: {{kind: train}}; {spec.recipe} has "
                           f"task kind {kind!r} (use memo-zoo run for it)")
    if rank() == 0:
        outcome = run_recipe(loaded, registry, only_variant=spec.variant, workdir=spec.workdir,
                             on_start=lambda run_id: print(f"run {run_id} started", file=sys.stderr))
        print(f"run {outcome.run_id} finished ({outcome.tracking_uri})")
        return outcome.run_id
    # Other ranks: the same task on the same (variant) recipes, in the same order, without MLflow.
    variants = variant_documents(loaded.document, loaded.source)
    if spec.variant is not None:
        variants = [v for v in variants if v.name == spec.variant]
    plan = ([(None, loaded.recipe)] if not variants
            else [(v.name, validate_document(v.document, registry, loaded.source)) for v in variants])
    for name, recipe in plan:
        seed_everything(recipe.seed)
        registry.build("task", recipe.task).run(RunContext(recipe, registry, None, spec.workdir, name))
    return None


def free_port() -> int:
    """A TCP port free on the loopback interface now (for the process group's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rank_main(local_rank: int, world: int, port: int, spec: TrainSpec, threads: int,
               environ: dict[str, str]) -> None:
    """Entry point of one rank: the launcher's environment and working directory (a forkserver
    started earlier may hold older ones), the torchrun variables, then ``run_train``."""
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(spec.workdir)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(local_rank),
                       "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world)})
    # N ranks on one machine share its cores: without a cap each would start one thread per core.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    try:
        run_train(spec)
    except MemoZooError as error:
        print(f"error (rank {local_rank}): {error}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED_EXIT_CODE)


def launch(spec: TrainSpec, num_processes: int) -> int:
    """Run ``spec`` on ``num_processes`` local ranks; returns the exit code (0, 2, 130 or 1)."""
    import torch.multiprocessing as mp

    if num_processes < 1:
        raise MemoZooError(f"--num-processes must be >= 1, got {num_processes}")
    if world_size() > 1:
        raise MemoZooError("this process is already one rank of a distributed job (WORLD_SIZE is set); "
                           "drop --num-processes when running under accelerate launch / torchrun")
    threads = max(1, (os.cpu_count() or 1) // num_processes)
    # forkserver: a fresh interpreter imports the heavy modules once and forks every rank from it,
    # instead of each spawned rank importing torch, diffusers and mlflow again. It never touches
    # CUDA or runs a thread pool before forking, so the ranks are as clean as spawned ones.
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    context = mp.start_processes(_rank_main, args=(num_processes, free_port(), spec, threads, dict(os.environ)),
                                 nprocs=num_processes, join=False, start_method="forkserver")
    try:
        try:
            while not context.join(timeout=1.0):
                pass
        except KeyboardInterrupt:
            # A terminal's Ctrl-C reaches every rank already; a SIGINT sent to the launcher alone
            # is passed on, so that rank 0 saves its checkpoint before everyone stops.
            for process in context.processes:
                if process.is_alive():
                    os.kill(process.pid, signal.SIGINT)
            while not context.join(timeout=1.0):
                pass
            return INTERRUPTED_EXIT_CODE
    except mp.ProcessExitedException as error:
        print(f"training stopped: rank {error.error_index} exited with code {error.exit_code}", file=sys.stderr)
        return error.exit_code if error.exit_code in (USER_ERROR_EXIT_CODE, INTERRUPTED_EXIT_CODE) else 1
    except mp.ProcessRaisedException as error:
        print(f"training failed in rank {error.error_index}:\n{error}", file=sys.stderr)
        return 1
    return 0


def train_command(spec: TrainSpec, num_processes: int = 1) -> int:
    """``memo-zoo train``: launch N ranks, or run here (one process, or a rank of an outer launcher)."""
    if num_processes > 1:
        return launch(spec, num_processes)
    run_train(spec)
    return 0

