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
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor


def deterministic_encoder(vae: Any) -> bool:
    """Whether ``vae.encode`` is a fixed function of the frames (its ``deterministic_encode``)."""
    return bool(getattr(vae, "deterministic_encode", False))


class LatentCache:
    """Latents of frames keyed by (clip, frame), up to ``max_bytes`` of latents (then misses are
    encoded every time and not kept). Lives in the training process; one per run and VAE."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._latents: dict[tuple[int, int], Tensor] = {}

    def __len__(self) -> int:
        return len(self._latents)

    def encode(self, frames: Tensor, keys: Tensor, encode: Callable[[Tensor], Tensor]) -> Tensor:
        """Latents of ``frames`` (N, 3, H, W) whose identities are ``keys`` (N, 2) long: cached ones
        looked up, the others ``encode``d in one call (and kept while under budget)."""
        if keys.shape != (frames.shape[0], 2):
            raise ValueError(f"keys must be (N, 2) for {frames.shape[0]} frames; got {tuple(keys.shape)}")
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

    def stats(self) -> dict[str, float]:
        looked_up = self.hits + self.misses
        return {"latent_cache_hit_rate": self.hits / looked_up if looked_up else 0.0,
                "latent_cache_frames": float(len(self._latents)), "latent_cache_mb": self.bytes / 2**20}
