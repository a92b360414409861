"""Loading what generation runs: the recipe's parts with a checkpoint's weights (spec §6).

Kept apart from ``generate_video`` (``memo_zoo.generate.pipeline``), as diffusers keeps a
pipeline's ``from_pretrained`` apart from its ``__call__``: a caller loads once and generates many
videos (the experiment task's held-out set, the benchmarks), and tests build a model by hand.

``load_generator_model(checkpoint, recipe, registry)`` resolves the checkpoint's layout
(``resolve_checkpoint``), refuses weights of another architecture, reads the weights through the
one reader of checkpoint files (``memo_zoo.model.checkpoint_files``) and returns a
``GeneratorModel``: the parts plus the defaults the recipe implies (fps, size, audio window).
With ``fast_path`` (a ``memo_zoo.generate.fast_path.FastPathConfig``) the network gets the GPU fast
path's switches (reference K/V cache, channels-last, ``torch.compile``) once loaded.
The network of either family (the zoo's ``MemoNet``, or the released network of preset
``memo_released``, with its release's weights when ``model.network.weights`` names one) comes from
the one builder and loader of ``memo_zoo.model.memo_net`` (``build_network`` / ``load_network``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from memo_zoo.errors import MemoZooError
from memo_zoo.generate.fast_path import FastPathConfig, apply_fast_path
from memo_zoo.generate.warning import GenerationWarning
from memo_zoo.model.checkpoint_files import (ENCODERS_FILE, MODEL_DIR, STATE_FILE, latest_checkpoint,
                                             load_encoder_weights)
from memo_zoo.model.compatibility import check_network_matches
from memo_zoo.model.memo_net import CONFIG_FILE, MemoNet, build_network, load_network, resolved_model
from memo_zoo.recipe.components import component_config, slot_factories


@dataclass
class GeneratorModel:
    """The parts generation runs, with the defaults the recipe implies.

    ``fps``/``size``/``audio_window``/``label_set`` come from a training recipe's ``task.samples``
    when there is one (the conditions the network was trained under), else from the preset.
    """

    net: MemoNet  # or a ReleasedMemoNet: the same API
    vae: Any
    image_encoder: Any
    audio_encoder: Any | None
    scheduler: BaseModel
    registry: Any
    emotion_detector: Any | None = None
    fps: float = 25.0
    size: int = 64
    audio_window: int = 2
    label_set: str | None = None
    seed: int = 0
    checkpoint: Path | None = None
    name: str = "memo"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    fast_path: FastPathConfig | None = None  # the switches applied to ``net`` (apply_fast_path), None = none

    @property
    def emotion_classes(self) -> int | None:
        """Emotion classes the network's audio module embeds, None when it ignores emotion."""
        if getattr(self.net, "emotion_classes", None) is not None:
            return int(self.net.emotion_classes)  # a network that always embeds emotion says how many
        fusion = self.net.audio_fusion_config
        if not getattr(fusion, "emotion_conditioning", False):
            return None
        return getattr(fusion, "num_emotion_classes", None)

    def modules(self) -> list[nn.Module]:
        parts = (self.net, self.vae, self.image_encoder, self.audio_encoder)
        return [part for part in parts if isinstance(part, nn.Module)]

    def to(self, device: torch.device) -> "GeneratorModel":
        for module in self.modules():
            module.to(device).eval().requires_grad_(False)
        self.device = device
        return self


def resolve_checkpoint(path: Path) -> tuple[Path, Path | None]:
    """(MemoNet folder, encoders file or None) of a checkpoint path in any of the accepted layouts:

    - a training checkpoint ``checkpoint-N/`` (``trainer.json``, ``model/``, ``encoders.safetensors``),
      or its ``model/`` folder;
    - a training ``out_dir`` holding ``checkpoint-N/`` folders: the newest;
    - a ``MemoNet.save_pretrained`` folder, with an optional ``encoders.safetensors`` beside the
      network files.
    """
    path = Path(path)
    if not path.exists():
        raise MemoZooError(f"checkpoint {path}: not found")
    if not path.is_dir():
        raise MemoZooError(f"checkpoint {path}: expected a folder (a training checkpoint, a training out_dir or "
                           "a MemoNet folder with memo_net.json), got a file")
    if (path / CONFIG_FILE).is_file() and (path.parent / STATE_FILE).is_file():
        path = path.parent  # the model/ folder of a training checkpoint: take its encoders too
    if not (path / STATE_FILE).is_file() and not (path / CONFIG_FILE).is_file():
        newest = latest_checkpoint(path)
        if newest is not None:
            path = newest
    if (path / STATE_FILE).is_file():
        encoders = path / ENCODERS_FILE
        return path / MODEL_DIR, encoders if encoders.is_file() else None
    if (path / CONFIG_FILE).is_file():
        encoders = path / ENCODERS_FILE
        return path, encoders if encoders.is_file() else None
    raise MemoZooError(f"checkpoint {path}: not a training checkpoint ({STATE_FILE} + {MODEL_DIR}/), a training "
                       f"out_dir (checkpoint-N/ folders) or a MemoNet folder ({CONFIG_FILE})")


def _training_samples(recipe: BaseModel) -> Any | None:
    """A training recipe's ``task.samples`` (fps, size, audio_window, label_set), or None."""
    return getattr(recipe.task, "samples", None)


def load_generator_model(checkpoint_dir: Path | str | None, recipe: BaseModel, registry: Any,
                         fast_path: FastPathConfig | None = None) -> GeneratorModel:
    """The recipe's network, autoencoder, encoders, sampler and emotion detector, with the weights
    of ``checkpoint_dir`` (any layout of ``resolve_checkpoint``; None = random weights, warned),
    and ``fast_path``'s switches applied to the network when given (``apply_fast_path``).

    The recipe's ``model.network``/``temporal``/``audio_fusion`` are the architecture; a
    checkpoint that does not fit it raises ``MemoZooError`` naming the differing config fields
    and the mismatched parameters. A recipe without ``temporal``/``audio_fusion`` takes the
    checkpoint's. Without a checkpoint, a ``memo_released`` network with ``model.network.weights``
    has the release's weights (not a smoke run).
    """
    model = recipe.model
    for part in ("vae", "image_encoder"):
        if getattr(model, part) is None:
            raise MemoZooError(f"generation needs model.{part} in the recipe")
    checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir)
    encoders_file = None
    factories = slot_factories(registry)
    if checkpoint is not None:
        net_dir, encoders_file = resolve_checkpoint(checkpoint)
        # Before loading: weights of another architecture can have the very same parameter names
        # (a self_attention recipe over linear_memory weights, another gamma) and load silently.
        # A released network is compared as it would be built (its release's geometry and options).
        view = resolved_model(model, factories)
        check_network_matches(net_dir, view, f"checkpoint {checkpoint}")
        try:
            net = load_network(net_dir, factories, network=view.network, temporal=view.temporal,
                               audio_fusion=view.audio_fusion)
        except MemoZooError as error:
            raise MemoZooError(f"checkpoint {checkpoint} does not fit the recipe's model:\n{error}") from None
    else:
        network = model.network
        if getattr(network, "weights", None) is None:
            warnings.warn("no checkpoint given: the network has random weights (a smoke run, not a talking video)",
                          GenerationWarning, stacklevel=2)
        net = build_network(model, factories)
    vae = registry.build("vae", model.vae)
    image_encoder = registry.build("image_encoder", model.image_encoder)
    audio_encoder = None if model.audio_encoder is None else registry.build("audio_encoder", model.audio_encoder)
    if audio_encoder is None:
        warnings.warn("the recipe has no model.audio_encoder: every clip gets zero audio tokens (no lip sync)",
                      GenerationWarning, stacklevel=2)
    if encoders_file is not None:
        loaded = load_encoder_weights(encoders_file, {"image_encoder": image_encoder, "audio_encoder": audio_encoder})
        for part, encoder in (("image_encoder", image_encoder), ("audio_encoder", audio_encoder)):
            if isinstance(encoder, nn.Module) and any(p.requires_grad for p in encoder.parameters()) \
                    and not loaded.get(part):
                warnings.warn(f"{encoders_file} has no weights for the trainable model.{part}: it keeps its random "
                              "initialisation", GenerationWarning, stacklevel=2)
    elif checkpoint is not None:
        for part, encoder in (("image_encoder", image_encoder), ("audio_encoder", audio_encoder)):
            if isinstance(encoder, nn.Module) and any(p.requires_grad for p in encoder.parameters()):
                warnings.warn(f"checkpoint {checkpoint} has no {ENCODERS_FILE}: the trainable model.{part} keeps its "
                              "random initialisation", GenerationWarning, stacklevel=2)
    _check_parts(net, vae, image_encoder, audio_encoder)
    scheduler = recipe.scheduler or component_config(registry, "scheduler", {"kind": "flow_euler"})
    detector = None if recipe.emotion_detector is None else registry.build("emotion_detector",
                                                                           recipe.emotion_detector)
    samples = _training_samples(recipe)
    # Full-size presets: 30 fps, 512 px (spec §0; the released inference.yaml)
    sd15 = net.network_config.preset in ("sd15", "memo_released")
    encoder_window = getattr(getattr(audio_encoder, "config", None), "window", None)
    generator = GeneratorModel(
        net=net, vae=vae, image_encoder=image_encoder, audio_encoder=audio_encoder, scheduler=scheduler,
        registry=registry, emotion_detector=detector,
        fps=float(samples.fps) if samples is not None else (30.0 if sd15 else 25.0),
        size=int(samples.size) if samples is not None else (512 if sd15 else 64),
        # pad_frames: as many real neighbouring frames as training handed the encoder (A5).
        audio_window=int(samples.audio_window) if samples is not None else int(encoder_window or 2),
        label_set=getattr(samples, "label_set", None), seed=int(recipe.seed), checkpoint=checkpoint,
        name=str(recipe.name))
    return generator if fast_path is None else apply_fast_path(generator, fast_path)


def _check_parts(net: MemoNet, vae: Any, image_encoder: Any, audio_encoder: Any | None) -> None:
    cfg = net.network_config
    problems = []
    if getattr(vae, "latent_channels", None) != cfg.latent_channels:
        problems.append(f"model.vae gives {getattr(vae, 'latent_channels', None)} latent channels, the network "
                        f"reads {cfg.latent_channels} (model.network.latent_channels)")
    if getattr(image_encoder, "embed_dim", None) != cfg.image_embed_dim:
        problems.append(f"model.image_encoder gives {getattr(image_encoder, 'embed_dim', None)}-d embeddings, the "
                        f"network reads {cfg.image_embed_dim} (model.network.image_embed_dim)")
    if audio_encoder is not None and (audio_encoder.token_count, audio_encoder.token_dim) != (cfg.audio_tokens,
                                                                                           cfg.audio_dim):
        problems.append(f"model.audio_encoder gives {audio_encoder.token_count} tokens of {audio_encoder.token_dim}, "
                        f"the network reads {cfg.audio_tokens} of {cfg.audio_dim}")
    if problems:
        raise MemoZooError("the recipe's model parts do not fit together:\n  " + "\n  ".join(problems))
