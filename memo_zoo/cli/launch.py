"""Running ``task: train`` in one process, in N (``memo-zoo train --num-processes N``), or through an
accelerate config file on one node or many (``memo-zoo train --config-file FILE``).

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

``launch_with_config(spec, AccelerateLaunch(file, machine_rank, ...))`` checks the file (parsed by
accelerate; FSDP and DeepSpeed options memo-zoo cannot save are refused; the recipe's mixed
precision, accumulation and clipping must not be contradicted) and re-runs the command as
``accelerate launch --config_file FILE [--machine_rank R ...] -m memo_zoo train RECIPE ...``. The same
command on every node of a cluster (each with its machine_rank) makes one job: accelerate's
torchrun agent starts the node's ranks and joins them at main_process_ip:main_process_port, a
port that listens on the main node and must only be reachable on the cluster's private network.
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


# ---- through an accelerate config file (``memo-zoo train --config-file``) --------------------------

# The launch types memo-zoo's trainer runs under (accelerate's distributed_type).
SUPPORTED_TYPES = ("NO", "MULTI_CPU", "MULTI_GPU", "DEEPSPEED")


@dataclass(frozen=True)
class AccelerateLaunch:
    """An accelerate config file and what this node overrides of it (on a cluster the same file
    serves every node; each node passes its own ``machine_rank``, and the allocation's first node
    its address)."""

    config_file: Path
    machine_rank: int | None = None
    main_process_ip: str | None = None
    main_process_port: int | None = None
    num_processes: int | None = None


def read_accelerate_config(path: Path) -> dict[str, object]:
    """The settings of an accelerate config file, parsed by accelerate itself (unknown keys and
    wrong types are refused there); ``MemoZooError`` naming the file otherwise."""
    from accelerate.commands.config.config_args import load_config_from_file

    if not path.is_file():
        raise MemoZooError(f"--config-file {path}: no such file")
    try:
        return load_config_from_file(str(path)).to_dict()
    except Exception as error:  # yaml errors, unknown keys (TypeError), bad enum values (ValueError)
        raise MemoZooError(f"--config-file {path}: accelerate cannot read it ({type(error).__name__}: "
                           f"{error})") from None


def check_accelerate_config(path: Path, config: dict[str, object], train: object) -> None:
    """Refuse, before any process starts, a config file memo-zoo cannot train under or whose values
    contradict the recipe's ``task`` (``train``: its ``TrainConfig``). The recipe owns what changes
    what is learned (batch, accumulation, clipping, mixed precision); the file says how to run."""
    kind = str(config.get("distributed_type", "NO")).split(".")[-1]
    if kind == "FSDP":
        raise MemoZooError(f"--config-file {path}: distributed_type FSDP is not supported: memo-zoo's checkpoints "
                           "save every parameter whole from the main process and its loop steps a plain "
                           "optimizer, which FSDP shards; use DeepSpeed ZeRO-2 (recipes/launch/zero2.yaml) or DDP")
    if kind not in SUPPORTED_TYPES:
        raise MemoZooError(f"--config-file {path}: distributed_type {kind} is not supported; memo-zoo trains under "
                           f"{', '.join(SUPPORTED_TYPES)}")
    precision = str(config.get("mixed_precision") or "no")
    wanted = getattr(train, "mixed_precision")
    if precision != wanted:
        raise MemoZooError(f"--config-file {path}: mixed_precision is {precision!r}, the recipe's "
                           f"task.mixed_precision {wanted!r}; the recipe owns it: add task.mixed_precision={precision} "
                           f"to the command or change the file")
    if kind != "DEEPSPEED":
        return
    if config.get("use_cpu"):
        raise MemoZooError(f"--config-file {path}: use_cpu: true makes accelerate drop DeepSpeed and run plain DDP; "
                           "leave it false (on a machine without GPUs memo-zoo runs DeepSpeed's CPU accelerator "
                           "over gloo)")
    deepspeed = dict(config.get("deepspeed_config") or {})
    if deepspeed.get("deepspeed_config_file"):
        return  # a DeepSpeed JSON of its own: checked by the trainer once accelerate has read it
    stage = deepspeed.get("zero_stage", 2)
    if stage not in (1, 2):
        raise MemoZooError(f"--config-file {path}: deepspeed_config.zero_stage is {stage}; memo-zoo trains with ZeRO "
                           "stage 1 or 2 (stage 3 shards the weights its checkpoints save whole)")
    for key in ("offload_optimizer_device", "offload_param_device"):
        if deepspeed.get(key) not in (None, "none"):
            raise MemoZooError(f"--config-file {path}: deepspeed_config.{key} is {deepspeed[key]!r}; memo-zoo's "
                               "checkpoints need the optimizer state on the training device: set it to none")
    for key, field in (("gradient_accumulation_steps", "grad_accumulation"), ("gradient_clipping", "max_grad_norm")):
        value = deepspeed.get(key)
        ours = getattr(train, field)
        if field == "max_grad_norm":
            ours = ours or 0.0
        if value not in (None, "auto") and float(value) != float(ours):
            raise MemoZooError(f"--config-file {path}: deepspeed_config.{key} is {value}, the recipe's task.{field} "
                               f"{getattr(train, field)}; the recipe owns it: leave {key} out of the file or set "
                               f"task.{field}={value}")


def accelerate_command(spec: TrainSpec, how: AccelerateLaunch, config: dict[str, object]) -> list[str]:
    """``accelerate launch --config_file FILE [node overrides] -m memo_zoo train RECIPE ...``: every
    rank runs the train command as one rank of the job (``run_train``)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(how.config_file)]
    if how.num_processes is not None:
        command += ["--num_processes", str(how.num_processes)]
    if how.machine_rank is not None:
        command += ["--machine_rank", str(how.machine_rank)]
    if how.main_process_ip is not None:
        command += ["--main_process_ip", how.main_process_ip]
    port = how.main_process_port
    if port is None and int(config.get("num_machines") or 1) == 1 and not config.get("main_process_port"):
        # One machine and no port named: a free one, not accelerate's fixed 29500 (two jobs on one
        # machine would meet there).
        port = free_port()
    if port is not None:
        command += ["--main_process_port", str(port)]
    command += ["-m", "memo_zoo", "train", str(spec.recipe), *spec.overrides]
    if spec.resume:
        command.append("--resume")
    if spec.variant is not None:
        command += ["--variant", spec.variant]
    return command


def launch_with_config(spec: TrainSpec, how: AccelerateLaunch) -> int:
    """Run ``spec`` through ``accelerate launch`` with ``how.config_file``; returns its exit code
    (130 / 143 after a signal). Checked first: the file, its values against the recipe, and on
    several machines that the main node's address is known."""
    import subprocess

    from memo_zoo.recipe.loader import load_recipe
    from memo_zoo.train.launch_env import CONFIG_FILE_VARIABLE

    if world_size() > 1:
        raise MemoZooError("this process is already one rank of a distributed job (WORLD_SIZE is set); drop "
                           "--config-file when running under accelerate launch / torchrun")
    config_file = how.config_file.resolve()
    how = AccelerateLaunch(config_file, how.machine_rank, how.main_process_ip, how.main_process_port,
                           how.num_processes)
    config = read_accelerate_config(config_file)
    machines = int(config.get("num_machines") or 1)
    if how.num_processes is not None and (machines > 1 or how.num_processes < 1):
        raise MemoZooError(f"--num-processes {how.num_processes} with --config-file {config_file}: only a file for one "
                           f"machine takes it (this one has num_machines {machines}: set num_processes, all "
                           "machines' ranks together, in the file)")
    loaded = load_recipe(spec.recipe, registry_for(spec), list(spec.overrides))
    train = loaded.recipe.task
    if getattr(train, "kind", None) != "train":
        raise MemoZooError(f"memo-zoo train needs a recipe with task: {{kind: train}}; {spec.recipe} has task kind "
                           f"{getattr(train, 'kind', None)!r} (use memo-zoo run for it)")
    check_accelerate_config(config_file, config, train)
    rank_here = how.machine_rank if how.machine_rank is not None else int(config.get("machine_rank") or 0)
    if not 0 <= rank_here < machines:
        raise MemoZooError(f"--config-file {config_file}: machine_rank {rank_here} is outside 0..{machines - 1} "
                           f"(num_machines {machines})")
    if machines > 1 and not (how.main_process_ip or config.get("main_process_ip")):
        raise MemoZooError(f"--config-file {config_file}: {machines} machines need the main node's address: "
                           "main_process_ip in the file or --main-process-ip (the first node of the allocation)")
    environ = {**os.environ, CONFIG_FILE_VARIABLE: str(config_file)}
    kind = str(config.get("distributed_type", "NO")).split(".")[-1]
    if kind == "DEEPSPEED":
        import torch

        if not torch.cuda.is_available():
            environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed's CPU accelerator (gloo), not a GPU probe
    # A session of its own: a terminal's Ctrl-C reaches this launcher alone, which passes it on
    # once to accelerate's agent; the agent passes it to every rank (and kills them 30 s later,
    # torchrun's limit, so a checkpoint must be written within that).
    process = subprocess.Popen(accelerate_command(spec, how, config), cwd=spec.workdir, env=environ,
                               start_new_session=True)
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            try:
                process.send_signal(signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        return exit_code_for(interrupt_for(received[0]))
    return code


def train_command(spec: TrainSpec, num_processes: int = 1, accelerate: AccelerateLaunch | None = None) -> int:
    """``memo-zoo train``: through an accelerate config file, launch N local ranks, or run here
    (one process, or a rank of an outer launcher)."""
    if accelerate is not None:
        return launch_with_config(spec, accelerate)
    if num_processes > 1:
        return launch(spec, num_processes)
    run_train(spec)
    return 0

