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
                                   per-rank parameter fingerprints and last sample indices

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

import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from memo_zoo.errors import MemoZooError

FORMAT = "memo-zoo/train-checkpoint"
FORMAT_VERSION = 1
STATE_FILE = "trainer.json"
MODEL_DIR = "model"
ENCODERS_FILE = "encoders.safetensors"
_NAME = re.compile(r"^checkpoint-(\d{8,})$")


@dataclass
class TrainerState:
    """Where a run stands; written to ``trainer.json``.

    step:            optimizer steps done.
    epoch:           epoch the next micro-batch comes from.
    batch_in_epoch:  micro-batches of that epoch already consumed (per rank).
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
    ranks: list[dict[str, Any]] = field(default_factory=list)


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step:08d}"


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``out_dir`` as (step, path), oldest first."""
    if not out_dir.is_dir():
        return []
    found = []
    for path in out_dir.iterdir():
        match = _NAME.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1][1] if found else None


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
    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(out_dir: Path, state: TrainerState, modules: nn.Module, trainable_names: set[str],
                    optimizer: Any, scheduler: Any, scaler: Any | None, keep: int) -> Path:
    """Write the checkpoint of ``state.step`` atomically and prune to the newest ``keep``.

    ``modules`` is the unwrapped ``TrainModules``; ``trainable_names`` are the qualified names of
    the parameters the run may train (encoder parameters outside it are frozen backbones, rebuilt
    from their own weights). Returns the checkpoint folder. A checkpoint of the same step that
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
        torch.save(optimizer.state_dict(), temp / "optimizer.pt")
        torch.save(scheduler.state_dict(), temp / "scheduler.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), temp / "scaler.pt")
        torch.save(rng_states(), temp / "rng.pt")
        document = {"format": FORMAT, "version": FORMAT_VERSION, **asdict(state)}
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
        raise MemoZooError(f"{checkpoint} is not a training checkpoint ({STATE_FILE}: {error})") from None
    if document.get("format") != FORMAT or document.get("version") != FORMAT_VERSION:
        raise MemoZooError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} file")
    known = set(TrainerState.__dataclass_fields__)
    return TrainerState(**{k: v for k, v in document.items() if k in known})


def load_encoder_weights(checkpoint: Path, encoders: dict[str, Any], required: set[str] | None = None) -> None:
    """Load ``encoders.safetensors`` of a training checkpoint into built encoders.

    ``encoders`` maps "image_encoder" / "audio_encoder" to the recipe's encoder (or None); weights
    that do not fit raise ``MemoZooError``. ``required``: qualified names ("audio_encoder.<param>")
    that must be in the file (the trainer passes its trainable parameters); generation passes None.
    """
    stored = load_file(str(checkpoint / ENCODERS_FILE))
    for prefix, encoder in encoders.items():
        part = {k[len(prefix) + 1:]: v for k, v in stored.items() if k.startswith(prefix + ".")}
        if not isinstance(encoder, nn.Module):
            if part:
                raise MemoZooError(f"{checkpoint / ENCODERS_FILE} holds {prefix} weights but the recipe's "
                                   f"{prefix} has no parameters")
            continue
        own = encoder.state_dict()
        unexpected = sorted(set(part) - set(own))
        missing = sorted(k for k in own if k not in part and f"{prefix}.{k}" in (required or set()))
        shapes = sorted(k for k in set(part) & set(own) if own[k].shape != part[k].shape)
        if unexpected or missing or shapes:
            raise MemoZooError(f"{checkpoint / ENCODERS_FILE}: the {prefix} weights do not fit the recipe's "
                               f"{prefix} (unexpected: {unexpected[:8]}, missing: {missing[:8]}, "
                               f"shape mismatch: {shapes[:8]})")
        encoder.load_state_dict(part, strict=False)


def load_checkpoint(checkpoint: Path, modules: nn.Module, trainable_names: set[str], optimizer: Any,
                    scheduler: Any, scaler: Any | None) -> TrainerState:
    """Load weights, optimizer, scheduler, scaler and RNG states from ``checkpoint`` into the
    given (already built) objects; returns its ``TrainerState``. Every trainable encoder parameter
    must be in the checkpoint (frozen backbones come from their own weights)."""
    state = read_state(checkpoint)
    modules.net.load_weights(checkpoint / MODEL_DIR / "memo_net.safetensors")
    load_encoder_weights(checkpoint, {prefix: getattr(modules, prefix, None)
                                      for prefix in ("image_encoder", "audio_encoder")}, trainable_names)
    device = next(modules.parameters()).device
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=device, weights_only=False))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=False))
    if scaler is not None and (checkpoint / "scaler.pt").is_file():
        scaler.load_state_dict(torch.load(checkpoint / "scaler.pt", weights_only=False))
    restore_rng_states(torch.load(checkpoint / "rng.pt", weights_only=False))
    return state
