"""The 5-layer MLP head of the emotion detector (spec D1), its checkpoint, and backbone + head detectors.

``MLPHead``: standardise the window features (mean / std fitted on the training set, stored as
buffers so a checkpoint carries them), then 5 linear layers by default (4 hidden widths, GELU,
dropout) -> class logits. The last hidden activation is the *embedding* that train_emotion's
supervised contrastive regulariser (D2) works on.

Checkpoint: one ``.safetensors`` file holds the head's tensors AND, in its header metadata, the
description (label set and names, input size, widths, the detector kind and its backbone
settings); a ``.json`` next to it (same stem) is a readable copy of that description. Loading
reads the description from the safetensors header, so the pair can never disagree after an
interrupted save, and the single file is written atomically (temp + rename). Loading checks,
with a ``MemoZooError`` naming the file and both values: the detector kind, the number of classes
and their names against the configured label set (spec E4, §10: 8 paper / 9 emotion2vec), the
input size against the backbone's feature size, and every tensor's shape.

``HeadDetector``: the ``EmotionDetector`` (``memo_zoo.slots.emotion_detector``) of any frozen backbone whose
``window_features(audio, starts, ends)`` gives one feature vector per audio window, followed by a
head; E5 framing (windows per frame, dedup, stride, silence) is ``segments.label_frames``. Without
a head it refuses to label anything (``UntrainedDetectorError``), never returning guesses.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from memo_zoo.atomic import write_atomically
from memo_zoo.emotion import LABEL_SETS
from memo_zoo.errors import MemoZooError
from memo_zoo.weights import resolve_weights

from memo_zoo.emotion.segments import label_frames
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.emotion.configs import DEFAULT_WIDTHS, HeadOptions

CHECKPOINT_FORMAT = "memo-zoo/emotion-head"
CHECKPOINT_VERSION = 1


class UntrainedDetectorError(MemoZooError):
    """A trainable detector was asked for labels before it was given a checkpoint."""


class MLPHead(nn.Module):
    """Standardise -> [Linear -> GELU -> Dropout] x len(widths) -> Linear(classes)."""

    def __init__(self, in_dim: int, num_classes: int, widths: Sequence[int] = DEFAULT_WIDTHS, dropout: float = 0.1):
        super().__init__()
        self.in_dim, self.num_classes, self.widths, self.dropout = int(in_dim), int(num_classes), tuple(widths), dropout
        self.register_buffer("in_mean", torch.zeros(self.in_dim))
        self.register_buffer("in_std", torch.ones(self.in_dim))
        layers: list[nn.Module] = []
        size = self.in_dim
        for width in self.widths:
            layers += [nn.Linear(size, width), nn.GELU(), nn.Dropout(dropout)]
            size = width
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(size, self.num_classes)

    @property
    def embedding_dim(self) -> int:
        return self.widths[-1]

    def fit_normalisation(self, features: torch.Tensor) -> None:
        """Set the input standardisation from training features (N, in_dim)."""
        with torch.no_grad():
            self.in_mean.copy_(features.mean(dim=0))
            # A constant feature (std 0) would divide by zero; 1 leaves it centred at 0.
            std = features.std(dim=0, unbiased=False)
            self.in_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.hidden((features - self.in_mean) / self.in_std)

    def forward_with_embedding(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.embed(features)
        return embedding, self.out(embedding)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(features))


# ---------------------------------------------------------------------------------- checkpoint


def sidecar_path(path: str | Path) -> Path:
    """The readable JSON copy of a checkpoint's description: same folder and stem, ``.json``."""
    return Path(path).with_suffix(".json")


def save_head(path: str | Path, head: MLPHead, *, kind: str, label_set: str, backbone: dict[str, Any],
              extra: dict[str, Any] | None = None) -> Path:
    """Write ``head`` (+ description) to ``path`` (.safetensors) atomically, and the JSON copy beside it."""
    path = Path(path)
    if path.suffix == ".json":
        raise MemoZooError(f"{path}: a head checkpoint is the .safetensors file; its .json is written beside it")
    labels = LABEL_SETS[label_set]
    if len(labels) != head.num_classes:
        raise MemoZooError(f"the head has {head.num_classes} classes but label set {label_set!r} has {len(labels)}")
    description = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind,
                   "label_set": label_set, "labels": list(labels), "num_classes": head.num_classes,
                   "in_dim": head.in_dim, "widths": list(head.widths), "dropout": head.dropout,
                   "backbone": backbone, **({"extra": extra} if extra else {})}
    tensors = {name: t.detach().cpu().contiguous() for name, t in head.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, write in ((path, lambda temp: save_file(tensors, temp, metadata={"memo_zoo": json.dumps(description)})),
                          (sidecar_path(path), lambda temp: Path(temp).write_text(json.dumps(description, indent=2)))):
        write_atomically(target, write)
    return path


def read_description(path: Path) -> dict[str, Any]:
    """The description stored in a head checkpoint's header (MemoZooError if it is not one)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types for non-safetensors files
        raise MemoZooError(f"{path}: not a safetensors file ({error})") from None
    if "memo_zoo" not in metadata:
        raise MemoZooError(f"{path}: a safetensors file without memo-zoo's head description; "
                           "train a head with `memo-zoo run recipes/train_emotion_detector.yaml`")
    description = json.loads(metadata["memo_zoo"])
    if description.get("format") != CHECKPOINT_FORMAT or description.get("version") != CHECKPOINT_VERSION:
        raise MemoZooError(f"{path}: unknown head checkpoint format {description.get('format')!r} "
                           f"version {description.get('version')!r} "
                           f"(expected {CHECKPOINT_FORMAT!r} v{CHECKPOINT_VERSION})")
    return description


def load_head(reference: str | Path, *, kind: str, label_set: str, in_dim: int | None = None,
              what: str = "emotion head checkpoint") -> tuple[MLPHead, dict[str, Any], Path]:
    """Load a head saved by :func:`save_head`, checked against the detector that will use it.

    Returns the head (eval mode), its description and the resolved file.
    """
    path = resolve_weights(reference, what)
    if path.is_dir():
        raise MemoZooError(f"{what}: {path} is a folder; give the .safetensors file")
    description = read_description(path)
    if description["kind"] != kind:
        raise MemoZooError(f"{path}: a {description['kind']!r} checkpoint, not one of {kind!r}")
    labels = LABEL_SETS[label_set]
    found = int(description["num_classes"])
    if found != len(labels):
        raise MemoZooError(f"{path}: the head has {found} classes ({', '.join(description['labels'])}) but the "
                           f"detector's label_set {label_set!r} has {len(labels)} ({', '.join(labels)}); set "
                           f"label_set to {description['label_set']!r} or retrain the head")
    if tuple(description["labels"]) != labels:
        raise MemoZooError(f"{path}: the head's classes {description['labels']} are not label set "
                           f"{label_set!r} in its order {list(labels)}")
    if in_dim is not None and int(description["in_dim"]) != in_dim:
        raise MemoZooError(f"{path}: the head takes {description['in_dim']} features but the backbone gives "
                           f"{in_dim}; it was trained on another backbone ({description.get('backbone')})")
    head = MLPHead(int(description["in_dim"]), found, description["widths"], float(description["dropout"]))
    expected = head.state_dict()
    with safe_open(str(path), framework="pt") as handle:
        names = set(handle.keys())
        if names != set(expected):
            missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
            raise MemoZooError(f"{path}: tensors do not match the described head (missing {missing}, "
                               f"unexpected {unexpected})")
        state = {name: handle.get_tensor(name) for name in names}
    wrong = [f"{n} {tuple(state[n].shape)} != {tuple(t.shape)}" for n, t in expected.items()
             if state[n].shape != t.shape]
    if wrong:
        raise MemoZooError(f"{path}: tensor shapes do not match the described head: {'; '.join(wrong)}")
    head.load_state_dict(state)
    head.eval()
    return head, description, path


def file_identity(path: str | Path) -> dict[str, Any]:
    """What identifies a weights file for caching: resolved path, mtime and size."""
    path = Path(path)
    stat = path.stat()
    return {"path": str(path.resolve()), "mtime_ns": stat.st_mtime_ns, "size": stat.st_size}


# ---------------------------------------------------------------------------------- detector


class WindowBackbone(Protocol):
    """A frozen feature extractor: one vector per audio window.

    ``window_features(audio, starts, ends)``: 16 kHz mono float32 audio and (W,) sample ranges ->
    (W, feature_dim) float32 (no gradient). ``settings()``: JSON-ready description, stored in a
    head checkpoint and part of the detector's fingerprint.
    """

    feature_dim: int

    def window_features(self, audio: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> torch.Tensor: ...

    def settings(self) -> dict[str, Any]: ...


class HeadDetector:
    """Backbone + MLP head as an ``EmotionDetector`` (spec E4, E5, D1)."""

    def __init__(self, kind: str, backbone: WindowBackbone, options: HeadOptions, head: MLPHead | None = None,
                 checkpoint: Path | None = None, untrained_hint: str = ""):
        self.kind = kind
        self.backbone = backbone
        self.options = options
        self.labels: tuple[str, ...] = LABEL_SETS[options.label_set]
        self.head = head
        self.checkpoint = checkpoint
        self.untrained_hint = untrained_hint

    @property
    def trained(self) -> bool:
        return self.head is not None

    def new_head(self) -> MLPHead:
        """A freshly initialised head of this detector's sizes (what train_emotion trains)."""
        return MLPHead(self.backbone.feature_dim, len(self.labels), self.options.widths, self.options.dropout)

    def with_head(self, head: MLPHead, checkpoint: Path | None = None) -> "HeadDetector":
        return HeadDetector(self.kind, self.backbone, self.options, head.eval(), checkpoint, self.untrained_hint)

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        if self.head is None:
            raise UntrainedDetectorError(f"{self.kind}: nothing to save, the detector has no head")
        return save_head(path, self.head, kind=self.kind, label_set=self.options.label_set,
                         backbone=self.backbone.settings(), extra=extra)

    @property
    def fingerprint(self) -> str | None:
        """Hash of everything the labels depend on (cache key of ``segments.label_audio_file``)."""
        if self.head is None:
            return None
        data = {"kind": self.kind, "options": self.options.model_dump(mode="json"),
                "backbone": self.backbone.settings(),
                "head": file_identity(self.checkpoint) if self.checkpoint is not None
                else hashlib.sha256(b"".join(t.numpy().tobytes() for t in self.head.state_dict().values())).hexdigest()}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def _require_head(self) -> MLPHead:
        if self.head is None:
            raise UntrainedDetectorError(f"{self.kind} is untrained: give `checkpoint`{self.untrained_hint}")
        return self.head

    def window_logits(self, audio: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> torch.Tensor:
        """(W, classes) logits of the given windows of 16 kHz mono audio."""
        head = self._require_head()
        features = self.backbone.window_features(audio, starts, ends)
        with torch.no_grad():
            return head(features.float())

    def frame_labels(self, audio: torch.Tensor, sample_rate: int, fps: float, num_frames: int) -> torch.Tensor:
        """Label index per video frame (num_frames,) long, by spec E5 (see ``segments``)."""
        self._require_head()
        o = self.options
        return label_frames(audio, sample_rate, fps, num_frames, self.window_logits, labels=self.labels,
                            window_seconds=o.window_seconds, stride=o.stride, silence_db=o.silence_db,
                            silence_label=o.silence_label)
