"""Running ``task: train`` in one process or in N (``memo-zoo train --num-processes N``).

``run_train(spec)`` runs the recipe in THIS process. When the environment names a rank (RANK /
WORLD_SIZE, as ``accelerate launch``, ``torchrun`` or ``launch`` below set them), the process is one
rank of a DDP job: rank 0 runs the recipe through ``memo_zoo.runner.run_recipe`` (the MLflow run,
params, FAILED on error), the other ranks run the same task with no MLflow run at all, so only
rank 0 talks to the tracking store.

``launch(spec, N)`` starts N ranks on this machine with ``torch.multiprocessing`` (spawn: safe with
CUDA), each calling ``run_train``; accelerate then joins them into one process group (NCCL on
GPUs, gloo on CPUs). A failing rank stops the others. Ctrl-C or SIGTERM to the launcher is passed on to every rank; the ranks finish the step,
write one checkpoint together (``memo_zoo.train.stop``) and exit; the launcher waits for them and
returns 130 (SIGINT) or 143 (SIGTERM). Ranks that lose their launcher (SIGKILL) stop the same way.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from memo_zoo.errors import USER_ERROR_EXIT_CODE, MemoZooError
from memo_zoo.signals import INTERRUPT_EXIT_CODES, exit_code_for, interrupt_for, raise_terminated

# Tells each rank whom to watch (``_watch_launcher``).
LAUNCHER_PID_VARIABLE = "MEMO_ZOO_LAUNCHER_PID"

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
    # A process group of its own: a terminal's Ctrl-C reaches the launcher alone, which passes it
    # on once to every rank (``_supervise``). Were the ranks in the terminal's group too, each
    # would see it twice, and a second signal means "stop now, without the common checkpoint".
    os.setpgrp()
    # The forkserver ignores SIGINT and dies on SIGTERM; a rank stops on both like the CLI does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_terminated)
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(spec.workdir)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(local_rank),
                       "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world)})
    # N ranks on one machine share its cores: without a cap each would start one thread per core.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    _watch_launcher(int(environ.get(LAUNCHER_PID_VARIABLE, "0")))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    try:
        run_train(spec)
    except MemoZooError as error:
        print(f"error (rank {local_rank}): {error}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    except KeyboardInterrupt as interrupt:
        sys.exit(exit_code_for(interrupt))


def _watch_launcher(pid: int, every: float = 2.0) -> None:
    """If the launcher disappears (SIGKILL, a lost terminal), stop this rank as SIGTERM would: the
    ranks then write their common checkpoint instead of training on, orphaned, or being lost."""
    if pid <= 0:
        return

    def watch() -> None:
        while True:
            time.sleep(every)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            except PermissionError:
                pass  # the pid exists (owned by someone else after reuse is rare): keep watching

    threading.Thread(target=watch, name="memo-zoo-launcher-watch", daemon=True).start()


def launch(spec: TrainSpec, num_processes: int, grace_seconds: float | None = None) -> int:
    """Run ``spec`` on ``num_processes`` local ranks; returns the exit code (0, 2, 130, 143 or 1).

    ``grace_seconds``: after one rank has stopped on a signal, how long the others may take to
    stop too before they are killed (default ``MEMO_ZOO_STOP_GRACE_S`` or 600 s: a checkpoint of a
    large network takes a while).
    """
    import torch.multiprocessing as mp

    if num_processes < 1:
        raise MemoZooError(f"--num-processes must be >= 1, got {num_processes}")
    if world_size() > 1:
        raise MemoZooError("this process is already one rank of a distributed job (WORLD_SIZE is set); "
                           "drop --num-processes when running under accelerate launch / torchrun")
    if grace_seconds is None:
        grace_seconds = float(os.environ.get("MEMO_ZOO_STOP_GRACE_S", "600"))
    threads = max(1, (os.cpu_count() or 1) // num_processes)
    # forkserver: a fresh interpreter imports the heavy modules once and forks every rank from it,
    # instead of each spawned rank importing torch, diffusers and mlflow again. It never touches
    # CUDA or runs a thread pool before forking, so the ranks are as clean as spawned ones.
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    environ = {**os.environ, LAUNCHER_PID_VARIABLE: str(os.getpid())}
    context = mp.start_processes(_rank_main, args=(num_processes, free_port(), spec, threads, environ),
                                 nprocs=num_processes, join=False, start_method="forkserver")
    return _supervise(context.processes, grace_seconds)


def _supervise(processes: list, grace_seconds: float) -> int:
    """Wait for every rank; pass a stop signal on to all of them; returns the launcher's exit code.

    torch's own ``join`` kills the other ranks as soon as one exits non-zero, which is right for a
    crash (the others would wait for it in a collective for ever) and wrong for a stop: the ranks
    are then still writing their common checkpoint. So a rank that exits 130 / 143 leaves the
    others ``grace_seconds`` to finish; any other failure stops them at once.
    """
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        for process in processes:
            if process.is_alive():
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stopping_since: float | None = None
        while True:
            codes = [process.exitcode for process in processes]
            if all(code is not None for code in codes):
                break
            failed = [(index, code) for index, code in enumerate(codes)
                      if code is not None and code != 0 and code not in INTERRUPT_EXIT_CODES]
            if failed:
                index, code = failed[0]
                print(f"training stopped: rank {index} exited with code {code}; stopping the other ranks",
                      file=sys.stderr)
                _stop_all(processes)
                if received:
                    return exit_code_for(interrupt_for(received[0]))
                return code if code == USER_ERROR_EXIT_CODE else 1
            if stopping_since is None and any(code in INTERRUPT_EXIT_CODES for code in codes):
                stopping_since = time.monotonic()
            if stopping_since is not None and time.monotonic() - stopping_since > grace_seconds:
                print(f"training stopped: ranks still running {grace_seconds:g} s after the stop; killing them",
                      file=sys.stderr)
                _stop_all(processes)
                break
            multiprocessing.connection.wait([p.sentinel for p in processes if p.exitcode is None], timeout=1.0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = [process.exitcode for process in processes]
    if received:
        return exit_code_for(interrupt_for(received[0]))
    stopped = [code for code in codes if code in INTERRUPT_EXIT_CODES]
    if stopped:
        return stopped[0]
    return 0 if all(code == 0 for code in codes) else 1


def _stop_all(processes: list, patience: float = 10.0) -> None:
    """SIGTERM every live rank, then SIGKILL what is left after ``patience`` seconds."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + patience
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def train_command(spec: TrainSpec, num_processes: int = 1) -> int:
    """``memo-zoo train``: launch N ranks, or run here (one process, or a rank of an outer launcher)."""
    if num_processes > 1:
        return launch(spec, num_processes)
    run_train(spec)
    return 0

