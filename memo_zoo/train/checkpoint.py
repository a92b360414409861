"""Atomic training checkpoints that resume to exactly the loss curve of an unbroken run.

Layout of ``<out_dir>/checkpoint-<step:08d>/`` (the state after ``step`` optimizer steps)::

    model/memo_net.json            MemoNet.save_pretrained: configs (with kinds) ...
    model/memo_net.safetensors     ... and every network parameter; loads with MemoNet.from_pretrained
    encoders.safetensors           trainable encoder parameters + buffers ("image_encoder.*",
                                   "audio_encoder.*"); frozen pretrained backbones are not copied
    optimizer.pt                   optimizer state (AdamW moments and step counts)
    scheduler.pt                   lr scheduler state
    scaler.pt                      fp16 gradient scaler state (fp16 runs only)
    rng.pt                         python / numpy / torch (+ CUDA) RNG states of rank 0
    trainer.json                   step, epoch, position in the epoch, samples seen, dropped-sample
                                   total, phase, world size, batch geometry, seeds, MLflow run id,
                                   per-rank parameter fingerprints and last sample indices, and
                                   the size and SHA-256 of every other file

Safety: a checkpoint folder may come from someone else, so reading it never runs code from it.
The ``.pt`` files hold tensors, numbers, strings and containers only (the RNG states too: numpy's
is stored as a tensor), and are read with ``torch.load(weights_only=True)``; a pickle that asks for
anything else is refused with ``CorruptCheckpointError``. Checkpoints of memo-zoo before this
format stored numpy's RNG state as numpy objects: exactly those numpy types are allowed too.

Integrity: ``verify_checkpoint`` checks the recorded sizes and digests (and that every file
parses), so a truncated or damaged file is found before anything is loaded, and ``--resume``
can fall back to the newest checkpoint that is intact (``memo_zoo.train.loop``).

Atomicity: everything is written into ``<out_dir>/.tmp-checkpoint-<step>-<pid>/`` (files fsynced,
``trainer.json`` last), then the folder is renamed into place with ``os.replace``, a single
atomic step on POSIX file systems. A run killed at any moment leaves either the previous
checkpoints or a complete new one, plus a stray ``.tmp-*`` folder that the next save removes.
Only the newest ``keep`` checkpoints are kept.

Exactness: every random draw of a step comes from generators seeded by (seed, rank, step), the
data order by (seed, epoch) and each sample by (seed, epoch, index) (``memo_zoo.data.samples``),
so weights + optimizer + scheduler + (step, epoch, batch in epoch) determine the rest of the run.
The global RNG states are saved and restored as well, for anything a component draws from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from memo_zoo.errors import MemoZooError

# The weights side of the layout (what generation reads too) is the model layer's.
from memo_zoo.model.checkpoint_files import (ENCODERS_FILE, MODEL_DIR, STATE_FILE, CorruptCheckpointError,
                                             checkpoint_name, latest_checkpoint, list_checkpoints,
                                             load_encoder_weights, read_safetensors)


FORMAT = "memo-zoo/train-checkpoint"
FORMAT_VERSION = 1


@dataclass
class TrainerState:
    """Where a run stands; written to ``trainer.json``.

    step:            optimizer steps done.
    epoch:           epoch the next micro-batch comes from.
    batch_in_epoch:  micro-batches of that epoch already consumed: by the whole job with
                     data_order "global" (``memo_zoo.train.loop.BatchStream``), per rank in
                     checkpoints written before it ("" below).
    data_order:      "global": the epoch's micro-batches are cut from its permutation in one order
                     and dealt round-robin to the ranks, so a run resumes on another world size;
                     "" (older checkpoints): each rank cut its own share.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples_seen: int = 0
    dropped_total: int = 0
    phase: str = ""
    world_size: int = 1
    batch_size: int = 1
    grad_accumulation: int = 1
    seed: int = 0
    sample_seed: int = 0
    run_id: str | None = None
    parameter_names_digest: str = ""
    data_order: str = ""
    ranks: list[dict[str, Any]] = field(default_factory=list)


def _encoder_tensors(modules: nn.Module, trainable_names: set[str]) -> dict[str, torch.Tensor]:
    """Trainable parameters and persistent buffers of the encoders in ``TrainModules``, by qualified name."""
    state: dict[str, torch.Tensor] = {}
    for prefix in ("image_encoder", "audio_encoder"):
        encoder = getattr(modules, prefix, None)
        if not isinstance(encoder, nn.Module):
            continue
        params = {name for name, _ in encoder.named_parameters()}
        # state_dict: persistent buffers only (derived ones, like a mel filterbank, are rebuilt).
        for name, tensor in encoder.state_dict().items():
            if name not in params or f"{prefix}.{name}" in trainable_names:
                state[f"{prefix}.{name}"] = tensor.detach()
    return {name: tensor.contiguous().cpu() for name, tensor in state.items()}


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)


def rng_states() -> dict[str, Any]:
    """The global RNG states in types ``torch.load(weights_only=True)`` reads (no numpy objects)."""
    numpy_state = np.random.get_state(legacy=False)
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"bit_generator": numpy_state["bit_generator"],
                  "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]), "has_gauss": int(numpy_state["has_gauss"]),
                  "gauss": float(numpy_state["gauss"])},
        "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    stored = states["numpy"]
    if isinstance(stored, dict):
        np.random.set_state({"bit_generator": stored["bit_generator"],
                             "state": {"key": stored["key"].numpy().astype(np.uint32), "pos": stored["pos"]},
                             "has_gauss": stored["has_gauss"], "gauss": stored["gauss"]})
    else:  # a tuple from np.random.get_state() (checkpoints before the safe format)
        np.random.set_state(stored)
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _legacy_numpy_globals() -> list[Any]:
    """The numpy types a pre-safe-format ``rng.pt`` holds (numpy's RNG state tuple): only these
    are allowed beyond torch's own safe set."""
    from numpy.core.multiarray import _reconstruct

    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_pt(path: Path, map_location: Any = None) -> Any:
    """``torch.load`` of a checkpoint's ``.pt`` file that never runs code from it; any failure is a
    ``CorruptCheckpointError`` naming the file."""
    if not path.is_file():
        raise CorruptCheckpointError(f"{path}: missing")
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Weights only load failed" not in text:
            raise CorruptCheckpointError(f"{path}: cannot be read ({text.strip() or 'unpickling error'})") from None
        # torch's message is mostly advice to load it unsafely; the line worth showing names what
        # the file asked for (e.g. "Trying to load unsupported GLOBAL posix.system ...").
        lines = [line.strip() for line in text.splitlines()
                 if line.strip() and "Weights only load failed" not in line and "documentation" not in line]
        detail = lines[0] if lines else "unsupported content"
        raise CorruptCheckpointError(f"{path}: refused: it holds more than plain state (a safe load does "
                                     f"not run code from a checkpoint; {detail})") from None
    except Exception as error:  # zip / pickle / EOF errors of a truncated or damaged file
        raise CorruptCheckpointError(f"{path}: cannot be read ({type(error).__name__}: {error})") from None


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {size, sha256}} of every file in a checkpoint folder but trainer.json."""
    return {path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": file_digest(path)}
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != STATE_FILE}


def verify_checkpoint(checkpoint: Path) -> TrainerState:
    """Check that every file of ``checkpoint`` is there, whole and readable without running code;
    returns its state. ``CorruptCheckpointError`` names the first file that is not."""
    state = read_state(checkpoint)
    recorded = json.loads((checkpoint / STATE_FILE).read_text()).get("files")
    if recorded:
        for name, record in recorded.items():
            path = checkpoint / name
            if not path.is_file():
                raise CorruptCheckpointError(f"{path}: missing (trainer.json lists it)")
            size = path.stat().st_size
            if size != record["size"]:
                raise CorruptCheckpointError(f"{path}: {size} bytes, saved with {record['size']} (truncated or "
                                             "changed after saving)")
            if file_digest(path) != record["sha256"]:
                raise CorruptCheckpointError(f"{path}: its content differs from what was saved (SHA-256 "
                                             "mismatch)")
    else:  # an older checkpoint without digests: at least every file must parse
        for name in (f"{MODEL_DIR}/memo_net.safetensors", ENCODERS_FILE):
            read_safetensors(checkpoint / name)
    for name in ("optimizer.pt", "scheduler.pt", "rng.pt"):
        load_pt(checkpoint / name, map_location="cpu")
    if (checkpoint / "scaler.pt").exists():
        load_pt(checkpoint / "scaler.pt", map_location="cpu")
    return state


def save_checkpoint(out_dir: Path, state: TrainerState, modules: nn.Module, trainable_names: set[str],
                    optimizer: Any, scheduler: Any, scaler: Any | None, keep: int) -> Path:
    """Write the checkpoint of ``state.step`` atomically and prune to the newest ``keep``.

    ``modules`` is the unwrapped ``TrainModules``; ``trainable_names`` are the qualified names of
    the parameters the run may train (encoder parameters outside it are frozen backbones, rebuilt
    from their own weights). ``optimizer``: the optimizer, or its ``state_dict`` already taken
    (under DeepSpeed ZeRO that takes a collective, ``memo_zoo.train.zero``). Returns the checkpoint folder. A checkpoint of the same step that
    already exists is kept as it is (the state it holds is the same).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / checkpoint_name(state.step)
    if (final / STATE_FILE).is_file():
        return final
    for stray in out_dir.glob(".tmp-checkpoint-*"):
        shutil.rmtree(stray, ignore_errors=True)
    temp = out_dir / f".tmp-{checkpoint_name(state.step)}-{os.getpid()}"
    temp.mkdir()
    try:
        modules.net.save_pretrained(temp / MODEL_DIR)
        save_file(_encoder_tensors(modules, trainable_names), str(temp / ENCODERS_FILE), metadata={"format": "pt"})
        torch.save(optimizer if isinstance(optimizer, dict) else optimizer.state_dict(), temp / "optimizer.pt")
        torch.save(scheduler.state_dict(), temp / "scheduler.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), temp / "scaler.pt")
        torch.save(rng_states(), temp / "rng.pt")
        document = {"format": FORMAT, "version": FORMAT_VERSION, **asdict(state), "files": _file_records(temp)}
        (temp / STATE_FILE).write_text(json.dumps(document, indent=1) + "\n")
        _fsync_tree(temp)
        if final.exists():
            # A folder without trainer.json: a half-deleted or foreign leftover, never a checkpoint.
            shutil.rmtree(final)
        os.replace(temp, final)
        _fsync_dir(out_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    for _, old in list_checkpoints(out_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(checkpoint: Path) -> TrainerState:
    """The ``TrainerState`` of a checkpoint folder; ``MemoZooError`` if it is not one."""
    path = checkpoint / STATE_FILE
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CorruptCheckpointError(f"{checkpoint} is not a training checkpoint ({STATE_FILE}: {error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("version") != FORMAT_VERSION:
        raise CorruptCheckpointError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} file")
    known = set(TrainerState.__dataclass_fields__)
    return TrainerState(**{k: v for k, v in document.items() if k in known})


def load_checkpoint(checkpoint: Path, modules: nn.Module, trainable_names: set[str], optimizer: Any,
                    scheduler: Any, scaler: Any | None) -> TrainerState:
    """Load weights, optimizer, scheduler, scaler and RNG states from ``checkpoint`` into the
    given (already built) objects; returns its ``TrainerState``. Every trainable encoder parameter
    must be in the checkpoint (frozen backbones come from their own weights). ``optimizer`` is
    anything with torch's ``load_state_dict`` (DeepSpeed ZeRO: ``memo_zoo.train.zero``), loaded
    after the weights."""
    state = read_state(checkpoint)
    modules.net.load_weights(checkpoint / MODEL_DIR / "memo_net.safetensors")
    load_encoder_weights(checkpoint, {prefix: getattr(modules, prefix, None)
                                      for prefix in ("image_encoder", "audio_encoder")}, trainable_names)
    device = next(modules.parameters()).device
    optimizer.load_state_dict(load_pt(checkpoint / "optimizer.pt", map_location=device))
    scheduler.load_state_dict(load_pt(checkpoint / "scheduler.pt"))
    if scaler is not None and (checkpoint / "scaler.pt").is_file():
        scaler.load_state_dict(load_pt(checkpoint / "scaler.pt"))
    restore_rng_states(load_pt(checkpoint / "rng.pt"))
    return state
