"""The ``none`` audio-fusion component: no audio conditioning (ablation floor for spec §3)."""

from __future__ import annotations

from torch import Tensor, nn

# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import NoFusionConfig


class IdentityFusion(nn.Module):
    """Returns video and audio unchanged; has no parameters."""

    def __init__(self, channels: int, audio_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.audio_dim = audio_dim

    def forward(self, video: Tensor, audio: Tensor, emotion: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return video, audio


def build(config: NoFusionConfig, channels: int, audio_dim: int) -> IdentityFusion:
    """Factory of the ``none`` audio-fusion component."""
    return IdentityFusion(channels, audio_dim)
