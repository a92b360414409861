"""``emotion2vec_mlp`` (spec D1): a frozen emotion2vec backbone (through funasr) + the 5-layer MLP head.

The backbone loads from a LOCAL funasr model folder, exactly as funasr's ``AutoModel(model=<dir>,
disable_update=True)`` reads it offline: ``config.yaml`` (``model: Emotion2vec`` + ``model_conf``),
``model.pt`` (state dict) and, for the fine-tuned releases, ``tokens.txt`` (their 9 classes). That
is the layout of ``iic/emotion2vec_base`` / ``emotion2vec_plus_base`` / ``emotion2vec_plus_large``
as ModelScope and Hugging Face ship them; base (768-d) and large (1024-d) differ only in that
folder, the head's input size follows the backbone. memo-zoo never downloads: a missing folder or
file is a ``MissingWeightsError`` naming it, checked BEFORE funasr is called (funasr would try the
hub for a path that does not exist).

The loader is ``AutoModel.build_model`` -- the function ``AutoModel.__init__`` calls to read the
folder -- rather than ``AutoModel(...)`` itself, because ``__init__`` adds only what this needs
not (VAD / punctuation / speaker sub-models, an update check) and side effects a library must not
have (``logging.basicConfig`` on the root logger). ``build_model``'s own side effects are undone:
it reseeds every RNG (their states are restored) and sets torch's thread count (``ncpu`` is
passed as the current count). funasr loads ``model.pt`` leniently (a missing or mis-shaped tensor
only prints a warning and keeps the random init); this module checks every tensor against the
file and refuses a partial load, naming the tensors.

Features: each window goes through ``Emotion2vec.extract_features`` (no masking), rows layer-normed
first when the config says ``normalize`` (funasr's per-utterance normalisation, done per row so a
batch equals one-by-one calls), and the frame outputs are averaged over time: funasr's
``granularity="utterance"`` embedding. Windows are batched (``batch_size``), grouped by length (all
E5 windows of one audio have one length). emotion2vec is contextual, so each window is its own
forward pass; ``stride`` trades exactness for speed on long audio (see ``segments``).
"""

from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from memo_zoo.errors import MemoZooError
from memo_zoo.devices import resolve_device
from memo_zoo.weights import resolve_weights

from .mlp_head import HeadDetector, HeadOptions, file_identity, load_head
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.emotion.configs import Emotion2vecMLPConfig

KIND = "emotion2vec_mlp"
WHAT = "emotion2vec backbone (a funasr model folder: config.yaml, model.pt, tokens.txt)"


def _checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """model.pt's tensors, unwrapped the way funasr unwraps them (state_dict / model_state_dict / model)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        state = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) files cannot mmap
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise MemoZooError(f"{path}: not a state dict ({type(state).__name__})")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()
            if isinstance(v, torch.Tensor)}


def _check_loaded(model: torch.nn.Module, path: Path) -> None:
    stored = _checkpoint_state(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in stored]
    wrong = [f"{k} {tuple(stored[k].shape)} vs {tuple(t.shape)}" for k, t in expected.items()
             if k in stored and stored[k].shape != t.shape]
    if missing or wrong:
        problems = ([f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})"] if missing else []) + \
                   ([f"{len(wrong)} with other shapes (file vs config.yaml: {'; '.join(wrong[:3])})"] if wrong else [])
        raise MemoZooError(f"{path}: does not fit the model its config.yaml describes: {'; '.join(problems)}; "
                           "funasr would run it partly random")


def load_emotion2vec(folder: Path, device: torch.device) -> torch.nn.Module:
    """The frozen funasr ``Emotion2vec`` of a local model folder (eval mode, no gradients)."""
    config_file = folder / "config.yaml"
    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise MemoZooError(f"{config_file}: unreadable ({error})") from None
    if not isinstance(config, dict) or config.get("model") != "Emotion2vec" or "model_conf" not in config:
        raise MemoZooError(f"{config_file}: not an emotion2vec config (needs `model: Emotion2vec` and `model_conf`; "
                           f"got model {config.get('model') if isinstance(config, dict) else None!r})")
    try:
        from funasr import AutoModel
    except ImportError as error:
        raise MemoZooError(f"emotion2vec_mlp needs funasr (pip install funasr): {error}") from None
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # funasr logs every loading step at INFO on the root logger
    try:
        model, _ = AutoModel.build_model(model=str(folder), disable_update=True, device=str(device),
                                         ncpu=torch.get_num_threads(), disable_log=True)
    except (AssertionError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise MemoZooError(f"{folder}: funasr cannot build emotion2vec from it: "
                           f"{type(error).__name__}: {error}") from None
    finally:
        logging.disable(previous)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
    if type(model).__name__ != "Emotion2vec":
        raise MemoZooError(f"{folder}: funasr built a {type(model).__name__}, not Emotion2vec")
    _check_loaded(model, folder / "model.pt")
    model.eval().requires_grad_(False)
    return model


class Emotion2vecBackbone:
    """``WindowBackbone``: utterance-level emotion2vec embedding of each window."""

    def __init__(self, reference: str | Path, device: str = "auto", batch_size: int = 16):
        self.folder = resolve_weights(reference, WHAT, expect=("config.yaml", "model.pt"))
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.model = load_emotion2vec(self.folder, self.device)
        self.feature_dim = int(self.model.cfg.get("embed_dim"))
        self.normalize = bool(self.model.cfg.get("normalize", False))
        self._settings = {"name": "emotion2vec", "embed_dim": self.feature_dim,
                          "depth": int(self.model.cfg.get("depth")), "normalize": self.normalize,
                          "config_sha256": hashlib.sha256((self.folder / "config.yaml").read_bytes()).hexdigest(),
                          "weights": file_identity(self.folder / "model.pt")}

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, S) 16 kHz windows -> (B, embed_dim) time-averaged final-layer features."""
        x = batch.to(self.device, torch.float32)
        if self.normalize:
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
        with torch.inference_mode():
            frames = self.model.extract_features(x, padding_mask=None)["x"]
        return frames.mean(dim=1).float().cpu()

    def window_features(self, audio: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> torch.Tensor:
        starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
        out = torch.zeros(len(starts), self.feature_dim)
        lengths = ends - starts
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            for i in range(0, len(rows), self.batch_size):
                chosen = rows[i: i + self.batch_size]
                batch = np.stack([audio[s: s + length] for s in starts[chosen]])
                out[torch.from_numpy(chosen)] = self.embed(torch.from_numpy(batch))
        return out


def _options(config: Emotion2vecMLPConfig) -> HeadOptions:
    return HeadOptions(**{name: getattr(config, name) for name in HeadOptions.model_fields})


def untrained(config: Emotion2vecMLPConfig) -> HeadDetector:
    """The backbone with no head: what train_emotion trains a head for (its output goes to ``head``)."""
    backbone = Emotion2vecBackbone(config.backbone, config.device, config.batch_size)
    return HeadDetector(KIND, backbone, _options(config), untrained_hint=" (`head`: a trained head file)")


def build(config: Emotion2vecMLPConfig) -> HeadDetector:
    # The head first: it is small, and a wrong file should fail before a large backbone loads.
    head, description, path = load_head(config.head, kind=KIND, label_set=config.label_set,
                                        what="emotion2vec_mlp head")
    backbone = Emotion2vecBackbone(config.backbone, config.device, config.batch_size)
    if head.in_dim != backbone.feature_dim:
        raise MemoZooError(f"{path}: the head takes {head.in_dim}-d features, but the backbone at {backbone.folder} "
                           f"gives {backbone.feature_dim}-d (a base head on a large backbone, or the reverse?)")
    return HeadDetector(KIND, backbone, _options(config), head, path)
