"""``pixel``: the identity autoencoder, so the tiny CPU model diffuses frames directly.

Latents are the frames themselves, optionally pixel-unshuffled: ``patch_size`` p folds each p x p
block of pixels into channels, so (N, 3, H, W) frames become (N, 3 p^2, H / p, W / p) latents.
This is exact and invertible (a permutation of values) and makes the tiny CPU default fast:
attention cost grows with the square of the token count, and a 64 x 64 pixel latent costs ~90 s
per training step in the tiny net against 0.25 s at 8 x 8 (memo_zoo/recipe/network.py); p = 8
turns 64 px frames into 192 x 8 x 8 latents (the network's latent_channels must then be 192).
``scaling_factor`` rescales the latents the way SD's 0.18215 rescales its latents (spec A1), so
the diffusion sees unit-ish variance whichever VAE is in use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.vae.configs import PixelVAEConfig


class PixelVAE(torch.nn.Module):
    # encode is a fixed function of the frames: training may cache latents (memo_zoo.train.latent_cache)
    deterministic_encode = True

    def __init__(self, config: PixelVAEConfig):
        super().__init__()
        self.scaling_factor = config.scaling_factor
        self.patch_size = config.patch_size
        self.latent_channels = 3 * config.patch_size ** 2
        self.downsample = config.patch_size

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 3 p^2, H / p, W / p)."""
        h, w = frames.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"pixel VAE: frame size {h}x{w} is not divisible by patch_size {self.patch_size}")
        latents = F.pixel_unshuffle(frames, self.patch_size) if self.patch_size > 1 else frames
        return latents * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, 3 p^2, h, w) -> (N, 3, h p, w p)."""
        frames = latents / self.scaling_factor
        return F.pixel_shuffle(frames, self.patch_size) if self.patch_size > 1 else frames


def build(config: PixelVAEConfig) -> PixelVAE:
    return PixelVAE(config)
