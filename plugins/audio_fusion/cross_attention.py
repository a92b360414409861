"""The audio-fusion baseline MEMO replaces: video tokens cross-attend to audio tokens (spec E2).

Hallo/EMO style, with the same emotion options as the multi-modal module (E3) so that fusion and
emotion conditioning can be ablated independently. Holds ``CrossAttentionFusion`` and its
factory ``build``; its config ``CrossAttentionFusionConfig`` lives in the torch-free ``configs``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from memo_zoo.model.attention import merge_heads, split_heads, zero_linear

# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import CrossAttentionFusionConfig
from .emo_adanorm import make_norm


class CrossAttentionFusion(nn.Module):
    """Video tokens (normed; Emo-AdaNorm when emotion-conditioned) query the frame's audio tokens (E2).

    Keys and values are projected from the raw audio tokens into the video width, as diffusers'
    cross-attention treats its context. ``video_out = video + to_out(attn)``, ``to_out``
    zero-initialised (A6). The audio stream passes through unchanged.
    """

    def __init__(self, config: CrossAttentionFusionConfig, channels: int, audio_dim: int) -> None:
        super().__init__()
        if channels % config.heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({config.heads})")
        self.config = config
        self.channels = channels
        self.audio_dim = audio_dim
        self.heads = config.heads
        self.norm = make_norm(channels, config)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(audio_dim, channels, bias=False)
        self.to_v = nn.Linear(audio_dim, channels, bias=False)
        self.to_out = zero_linear(channels, channels)

    def forward(self, video: Tensor, audio: Tensor, emotion: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """video (N, L, C), audio (N, T, A), emotion (N,) or None -> (video_out, audio)."""
        if audio.shape[0] != video.shape[0]:
            raise ValueError(f"video and audio batch differ: {video.shape[0]} vs {audio.shape[0]}")
        q = split_heads(self.to_q(self.norm(video, emotion)), self.heads)
        k = split_heads(self.to_k(audio), self.heads)
        v = split_heads(self.to_v(audio), self.heads)
        p = self.config.dropout if self.training else 0.0
        out = merge_heads(F.scaled_dot_product_attention(q, k, v, dropout_p=p))
        return video + self.to_out(out), audio


def build(config: CrossAttentionFusionConfig, channels: int, audio_dim: int) -> CrossAttentionFusion:
    """Factory of the ``cross_attention`` audio-fusion component (spec E2)."""
    return CrossAttentionFusion(config, channels, audio_dim)
