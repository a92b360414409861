"""The files of a training checkpoint that hold weights, and their one reader.

Layout of ``<out_dir>/checkpoint-<step:08d>/`` as far as the network and encoders go (the trainer
adds its optimizer, scheduler, RNG states and ``trainer.json``: ``memo_zoo.train.checkpoint``)::

    model/                 MemoNet.save_pretrained (memo_net.json + memo_net.safetensors)
    encoders.safetensors   trainable encoder parameters ("image_encoder.*", "audio_encoder.*")

Both training (resume, ``init_weights``) and generation read these, so they live in the model
layer, below both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from memo_zoo.errors import MemoZooError


class CorruptCheckpointError(MemoZooError):
    """A checkpoint file is missing, truncated, changed since it was saved, or not safe to read."""


STATE_FILE = "trainer.json"
MODEL_DIR = "model"
ENCODERS_FILE = "encoders.safetensors"
_NAME = re.compile(r"^checkpoint-(\d{8,})$")


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


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CorruptCheckpointError(f"{path}: missing")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for a damaged file
        raise CorruptCheckpointError(f"{path}: cannot be read as safetensors ({error})") from None


def load_encoder_weights(source: Path, encoders: dict[str, Any], required: set[str] | None = None) -> dict[str, int]:
    """Load a trainer-written encoder file into built encoders: the one reader of that file, for
    resume, ``init_weights`` and generation alike.

    ``source``: the file, or a folder holding ``encoders.safetensors`` (a training checkpoint, or a
    MemoNet folder with the file beside it). ``encoders`` maps "image_encoder" / "audio_encoder" to
    the recipe's encoder (or None). Weights that do not fit raise ``MemoZooError`` naming the file
    and the recipe field. ``required``: qualified names ("audio_encoder.<param>") that must be in
    the file (the trainer passes its trainable parameters). Buffers derived from the config
    (registered ``persistent=False``, e.g. log_mel's filterbank) are skipped if a file has them:
    they are rebuilt from the config. Returns the number of tensors loaded per encoder.
    """
    path = Path(source) / ENCODERS_FILE if Path(source).is_dir() else Path(source)
    stored = read_safetensors(path)
    loaded: dict[str, int] = {}
    for prefix, encoder in encoders.items():
        part = {k[len(prefix) + 1:]: v for k, v in stored.items() if k.startswith(prefix + ".")}
        if not isinstance(encoder, nn.Module):
            if part:
                raise MemoZooError(f"{path} holds {prefix} weights but the recipe's model.{prefix} "
                                   f"{'is not set' if encoder is None else 'has no parameters'}")
            continue
        own = encoder.state_dict()
        derived = {name for name, _ in encoder.named_buffers()} - set(own)
        part = {k: v for k, v in part.items() if k not in derived}
        unexpected = sorted(set(part) - set(own))
        missing = sorted(k for k in own if k not in part and f"{prefix}.{k}" in (required or set()))
        shapes = sorted(f"{k}: {tuple(part[k].shape)} in the file, {tuple(own[k].shape)} here"
                        for k in set(part) & set(own) if part[k].shape != own[k].shape)
        if unexpected or missing or shapes:
            raise MemoZooError(f"{path}: the {prefix} weights do not fit the recipe's model.{prefix} "
                               f"(unexpected: {unexpected[:8]}, missing: {missing[:8]}, "
                               f"shape mismatch: {shapes[:8]})")
        encoder.load_state_dict(part, strict=False)
        loaded[prefix] = len(part)
    return loaded
