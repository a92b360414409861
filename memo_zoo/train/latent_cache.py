"""Frozen-VAE latents of training frames, encoded once per run (spec A1: the VAE never trains).

A training step encodes its target, reference and motion frames (about 80 frames of 64 px for
``experiment_tiny``'s joint phase, more FLOPs than the network's forward). Samples draw their
windows from the same clips epoch after epoch, so the same frames come back many times; with a
frozen VAE whose encoding is deterministic (the posterior mean) each frame's latent is a fixed
function of the frame, and encoding it again is wasted work.

``LatentCache`` maps (clip index, frame index), the frame identity ``TalkingHeadSamples`` puts in
every item, to that frame's latent. ``encode`` looks every frame of a batch up, encodes the misses
in one VAE call and keeps them while the cache is under its byte budget. What is learned does not
change: a cached latent is the latent the VAE gives that frame (up to the float rounding of
another batch composition, tested in tests/unit/test_latent_cache.py).

It is only used where that holds: the VAE says its encoding is deterministic
(``deterministic_encode``, read by ``deterministic_encoder``, set by the built-in VAEs; a VAE that samples its posterior, or a
third-party one that does not say, is encoded every step), and no colour augmentation changes
the frames before encoding.

``ClipLatentStore`` takes this across runs. An ablation trains a shared stage 1 and then a joint
phase per variant on the same frames with the same frozen VAE; encoding each frame again in every
training (and missing the in-memory cache for the first few hundred steps of each) was the largest
cost left in a cold run. With a store, the first time any frame of a clip is needed the whole clip
is encoded and written beside the decoded frames (``FrameCache``'s entry folder) as

    <cache_dir>/frames/<clip key>/latents-<VAE fingerprint>.npy    (T, C, h, w) float32

and every later lookup, in this run or another, reads it. ``vae_fingerprint`` hashes the VAE's
class, its config, its scalar encoding settings and every weight, so an autoencoder trained again
or with other options never reads another's latents; the clip key already covers the source file,
fps and frame size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import Tensor

from memo_zoo.atomic import write_atomically

# Attributes that change what ``encode`` returns without being weights (sd_vae, pixel and most
# wrappers keep their latent scaling as plain attributes).
ENCODING_ATTRIBUTES = ("scaling_factor", "shift_factor", "patch_size", "downsample", "latent_channels")


def deterministic_encoder(vae: Any) -> bool:
    """Whether ``vae.encode`` is a fixed function of the frames (its ``deterministic_encode``)."""
    return bool(getattr(vae, "deterministic_encode", False))


def vae_fingerprint(vae: Any) -> str:
    """A digest of everything that decides ``vae.encode``'s output: class, config, the scalar
    encoding settings (``ENCODING_ATTRIBUTES``) of the VAE and its submodules, and every tensor of
    its state dict (an autoencoder retrained in place gets a new fingerprint)."""
    digest = hashlib.sha256(f"{type(vae).__module__}.{type(vae).__qualname__}".encode())
    modules = list(vae.modules()) if isinstance(vae, torch.nn.Module) else [vae]
    for index, module in enumerate(modules):
        config = getattr(module, "config", None)
        if hasattr(config, "model_dump_json"):
            digest.update(config.model_dump_json().encode())
        elif isinstance(config, dict):  # diffusers' FrozenDict config
            digest.update(json.dumps(dict(config), sort_keys=True, default=str).encode())
        # The instance's own attributes (and the class's, for constants such as pixel's): not
        # getattr, which diffusers answers from its config with a deprecation warning.
        own = {**{k: v for k, v in vars(type(module)).items() if k in ENCODING_ATTRIBUTES}, **vars(module)}
        settings = {name: own[name] for name in ENCODING_ATTRIBUTES
                    if isinstance(own.get(name), (int, float, str, bool))}
        digest.update(f"{index}:{json.dumps(settings, sort_keys=True)}".encode())
    if isinstance(vae, torch.nn.Module):
        for name, tensor in sorted(vae.state_dict().items()):
            value = tensor.detach().to("cpu").contiguous()
            digest.update(f"{name}:{tuple(value.shape)}:{value.dtype}".encode())
            digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()[:24]


class ClipSource(Protocol):
    """What the store needs of a dataset: each clip's folder in the frame cache and its frames."""

    def clip_directory(self, clip: int) -> Path: ...

    def clip_length(self, clip: int) -> int: ...

    def clip_images(self, clip: int) -> Tensor: ...


class ClipLatentStore:
    """Whole clips' latents on disk, shared by every training that uses the same frozen VAE
    (module docstring). ``encode`` maps (N, 3, H, W) frames to latents (the trainer's chunked,
    no-grad VAE call)."""

    def __init__(self, clips: ClipSource, fingerprint: str, encode: Callable[[Tensor], Tensor]) -> None:
        self.clips = clips
        self.fingerprint = fingerprint
        self.encode = encode
        self.encoded_clips = 0
        self.read_clips = 0

    def path(self, clip: int) -> Path:
        return self.clips.clip_directory(clip) / f"latents-{self.fingerprint}.npy"

    def latents(self, clip: int) -> Tensor:
        """(T, C, h, w) float32 latents of every frame of ``clip``: read, or encoded and written."""
        path = self.path(clip)
        try:
            stored = np.load(path)
        except (OSError, ValueError):  # absent (the atomic rename means never half-written)
            stored = None
        if stored is not None and stored.dtype == np.float32 and stored.ndim == 4 \
                and stored.shape[0] == self.clips.clip_length(clip):
            self.read_clips += 1
            return torch.from_numpy(stored)
        with torch.no_grad():
            latents = self.encode(self.clips.clip_images(clip)).float().cpu().contiguous()
        self.encoded_clips += 1

        def write(temp: str) -> None:
            with open(temp, "wb") as handle:
                np.save(handle, latents.numpy())

        try:
            # Two processes encoding the same clip both write the whole array; the rename is atomic.
            write_atomically(path, write)
        except OSError:
            pass  # a read-only cache still trains; it only encodes again next run
        return latents


class LatentCache:
    """Latents of frames keyed by (clip, frame), up to ``max_bytes`` of latents (then misses are
    encoded every time and not kept). Lives in the training process; one per run and VAE. With a
    ``store``, a miss loads (or encodes once, for every run) the whole clip's latents."""

    def __init__(self, max_bytes: int, store: ClipLatentStore | None = None) -> None:
        self.max_bytes = int(max_bytes)
        self.store = store
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._latents: dict[tuple[int, int], Tensor] = {}
        self._clips: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self._latents)

    def encode(self, frames: Tensor, keys: Tensor, encode: Callable[[Tensor], Tensor]) -> Tensor:
        """Latents of ``frames`` (N, 3, H, W) whose identities are ``keys`` (N, 2) long: cached ones
        looked up, the others ``encode``d in one call (and kept while under budget)."""
        if keys.shape != (frames.shape[0], 2):
            raise ValueError(f"keys must be (N, 2) for {frames.shape[0]} frames; got {tuple(keys.shape)}")
        if self.store is not None:
            return self._from_store(keys)
        pairs = [(int(c), int(f)) for c, f in keys.tolist()]
        missing = [i for i, pair in enumerate(pairs) if pair not in self._latents]
        encoded: dict[int, Tensor] = {}
        if missing:
            fresh = encode(frames[missing])
            for row, i in enumerate(missing):
                latent = fresh[row]
                encoded[i] = latent
                if self.bytes + latent.numel() * latent.element_size() <= self.max_bytes:
                    # A copy: a view would keep the whole batch's tensor alive.
                    self._latents[pairs[i]] = latent.detach().clone()
                    self.bytes += latent.numel() * latent.element_size()
        self.misses += len(missing)
        self.hits += len(pairs) - len(missing)
        # torch.stack makes a new tensor: the caller may change it in place (motion augmentation).
        return torch.stack([encoded[i] if i in encoded else self._latents[pair] for i, pair in enumerate(pairs)])

    def _from_store(self, keys: Tensor) -> Tensor:
        """Rows of whole-clip latents; a clip not yet in memory is a miss (read or encoded once)."""
        rows = []
        for clip, frame in keys.tolist():
            latents = self._clips.get(clip)
            if latents is None:
                latents = self.store.latents(clip)
                self.misses += 1
                size = latents.numel() * latents.element_size()
                if self.bytes + size <= self.max_bytes:
                    self._clips[clip] = latents
                    self.bytes += size
            else:
                self.hits += 1
            if not 0 <= frame < latents.shape[0]:
                raise IndexError(f"frame {frame} of clip {clip} is outside its {latents.shape[0]} stored latents "
                                 f"({self.store.path(clip)})")
            rows.append(latents[frame])
        # torch.stack makes a new tensor: the caller may change it in place (motion augmentation).
        return torch.stack(rows)

    def stats(self) -> dict[str, float]:
        looked_up = self.hits + self.misses
        frames = sum(latents.shape[0] for latents in self._clips.values()) + len(self._latents)
        out = {"latent_cache_hit_rate": self.hits / looked_up if looked_up else 0.0,
               "latent_cache_frames": float(frames), "latent_cache_mb": self.bytes / 2**20}
        if self.store is not None:
            out.update(latent_store_clips_encoded=float(self.store.encoded_clips),
                       latent_store_clips_read=float(self.store.read_clips))
        return out
