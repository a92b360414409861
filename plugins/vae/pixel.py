"""``pixel``: the identity autoencoder, so the tiny CPU model diffuses frames directly.

Latents are the frames themselves (channels 3, no downsampling); ``scaling_factor`` rescales
them the way SD's 0.18215 rescales its latents (spec A1), so the diffusion sees unit-ish
variance whichever VAE is in use.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field


class PixelVAEConfig(BaseModel):
    """Identity autoencoder: latents = scaling_factor * frames."""

    model_config = ConfigDict(extra="forbid")

    scaling_factor: float = Field(1.0, gt=0, description="latent = scaling_factor * frame (frames in [-1, 1])")


class PixelVAE(torch.nn.Module):
    latent_channels = 3
    downsample = 1

    def __init__(self, config: PixelVAEConfig):
        super().__init__()
        self.scaling_factor = config.scaling_factor

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return frames * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.scaling_factor


def build(config: PixelVAEConfig) -> PixelVAE:
    return PixelVAE(config)
