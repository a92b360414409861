"""MEMO's multi-modal audio module: one joint attention over [video tokens ; audio tokens] (spec E1).

SD3 / MM-DiT style with Emo-AdaNorm (E3) on both branches, and the audio stream updated and
carried to the next block as the released code does (§10). Holds ``MultimodalAttentionFusion``
and its factory ``build``; its config ``MultimodalAttentionConfig`` lives in the torch-free ``configs``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memo_zoo.model.attention import merge_heads, split_heads, zero_linear

# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import MultimodalAttentionConfig
from .emo_adanorm import make_norm


class MultimodalAttentionFusion(nn.Module):
    """Joint video-audio attention (E1).

    Each modality has its own norm (Emo-AdaNorm when emotion-conditioned, else LayerNorm) and its
    own q/k/v projection into the video width C; the L video and T audio tokens of a frame are
    concatenated and attend jointly (one softmax over all L + T keys); the result is split back and
    each branch has its own output projection. Both outputs are residual and both output
    projections start at zero (A6), so at init ``video_out == video`` and ``audio_out == audio``.
    """

    def __init__(self, config: MultimodalAttentionConfig, channels: int, audio_dim: int) -> None:
        super().__init__()
        if channels % config.heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({config.heads})")
        self.config = config
        self.channels = channels
        self.audio_dim = audio_dim
        self.heads = config.heads
        self.video_norm = make_norm(channels, config)
        self.audio_norm = make_norm(audio_dim, config)
        self.video_qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.audio_qkv = nn.Linear(audio_dim, 3 * channels, bias=False)
        self.video_out = zero_linear(channels, channels)
        self.audio_out = zero_linear(channels, audio_dim)

    def forward(self, video: Tensor, audio: Tensor, emotion: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """video (N, L, C), audio (N, T, A), emotion (N,) or None -> (video_out, audio_out)."""
        if audio.shape[0] != video.shape[0]:
            raise ValueError(f"video and audio batch differ: {video.shape[0]} vs {audio.shape[0]}")
        length = video.shape[1]
        vq, vk, vv = self.video_qkv(self.video_norm(video, emotion)).chunk(3, dim=-1)
        aq, ak, av = self.audio_qkv(self.audio_norm(audio, emotion)).chunk(3, dim=-1)
        q, k, v = (split_heads(torch.cat(pair, dim=1), self.heads) for pair in ((vq, aq), (vk, ak), (vv, av)))
        p = self.config.dropout if self.training else 0.0
        joint = merge_heads(F.scaled_dot_product_attention(q, k, v, dropout_p=p))
        return video + self.video_out(joint[:, :length]), audio + self.audio_out(joint[:, length:])


def build(config: MultimodalAttentionConfig, channels: int, audio_dim: int) -> MultimodalAttentionFusion:
    """Factory of the ``multimodal_attention`` audio-fusion component (spec E1)."""
    return MultimodalAttentionFusion(config, channels, audio_dim)
