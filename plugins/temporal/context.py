"""What the built-in temporal components share: config fields, per-frame norms and attention
projections, token reshapes and shape checks.

The temporal slot's protocol, which every temporal component follows, is the core's:
``memo_zoo.slots.temporal.TemporalModule`` (context per video, ``update_context`` once per clip, T6).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memo_zoo.model.attention import zero_linear

# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import FrameAttentionOptions, FrameNormOptions  # noqa: F401


class FrameNorm(nn.Module):
    """Per-frame normalisation of (B, F, C, H, W) features, returned as (B*H*W, F, C) tokens.

    Both kinds only look inside one frame, so a frame is normalised the same way whether it arrives
    as a current frame or later as a motion frame; the memory then stores exactly what the current
    clip would have contributed.
    """

    def __init__(self, kind: str, channels: int, groups: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.kind = kind
        if kind == "layer":
            self.inner: nn.Module = nn.LayerNorm(channels, eps=eps)
        elif kind == "group":
            if channels % groups:
                raise ValueError(f"norm='group' needs channels ({channels}) divisible by norm_groups ({groups})")
            self.inner = nn.GroupNorm(groups, channels, eps=eps)
        else:
            raise ValueError(f"unknown norm kind {kind!r}")

    def forward(self, x: Tensor) -> Tensor:
        """(B, F, C, H, W) features -> normalised tokens (B*H*W, F, C), see :func:`to_tokens`."""
        if self.kind == "layer":
            # Tokens first: LayerNorm then reads contiguous channels, with one copy instead of three.
            return self.inner(to_tokens(x))
        b, f, c, h, w = x.shape
        return to_tokens(self.inner(x.reshape(b * f, c, h, w)).reshape(b, f, c, h, w))


class FrameAttention(nn.Module):
    """Per-frame norm, bias-free q/k/v and a zero-initialised output: what T1 and T7 both hold.

    Bias-free projections as in diffusers' Attention (attention_bias=False), which AnimateDiff's
    motion modules use (A6); the zero ``to_out`` makes a fresh module the identity (A6). The
    attribute names are the state-dict keys of saved checkpoints.
    """

    def __init__(self, config: FrameAttentionOptions, channels: int) -> None:
        super().__init__()
        self.config = config
        self.channels = channels
        self.heads = config.heads
        self.head_dim = check_heads(channels, config.heads)
        self.norm = FrameNorm(config.norm, channels, config.norm_groups)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(channels, channels, bias=False)
        self.to_v = nn.Linear(channels, channels, bias=False)
        self.to_out = zero_linear(channels, channels)


def to_tokens(x: Tensor) -> Tensor:
    """(B, F, C, H, W) -> (B*H*W, F, C): one temporal sequence per spatial position (spec §2)."""
    b, f, c, h, w = x.shape
    return x.permute(0, 3, 4, 1, 2).reshape(b * h * w, f, c)


def from_tokens(tokens: Tensor, batch: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`to_tokens`."""
    n, f, c = tokens.shape
    return tokens.reshape(batch, height, width, f, c).permute(0, 3, 4, 1, 2)


def softmax_last(t: Tensor) -> Tensor:
    """Softmax over the last dim, which here is a head's few channels (8-160).

    On CPU, torch's softmax kernel is slow for such short rows (measured 5.0 ms vs 2.2 ms for this
    form on (256, 16, 8, 8) float32, one thread); on CUDA the fused kernel is the faster one.
    """
    if t.device.type != "cpu":
        return t.softmax(dim=-1)
    e = torch.exp(t - t.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype of memory sums: at least float32, so long bf16/fp16 streams do not lose the tail."""
    return torch.promote_types(dtype, torch.float32)


def check_heads(channels: int, heads: int) -> int:
    """Head width; raises when ``channels`` does not split evenly into ``heads``."""
    if channels % heads:
        raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
    return channels // heads


def check_motion(motion: Tensor, batch: int, channels: int) -> None:
    """Shape check shared by ``update_context`` implementations."""
    if motion.dim() != 5 or motion.shape[0] != batch or motion.shape[2] != channels:
        raise ValueError(
            f"motion must be (B={batch}, Fm, C={channels}, H, W); got {tuple(motion.shape)}"
        )


def check_features(x: Tensor, ctx: object, channels: int) -> None:
    """Shape check shared by ``forward`` implementations: ``x`` must match the context it reads."""
    if x.dim() != 5 or x.shape[2] != channels:
        raise ValueError(f"features must be (B, F, C={channels}, H, W); got {tuple(x.shape)}")
    if ctx is None:
        return
    if x.shape[0] != ctx.batch:
        raise ValueError(f"features have batch {x.shape[0]} but the context was made for {ctx.batch}")
    spatial = getattr(ctx, "spatial", None)
    if spatial is not None and spatial != (x.shape[3], x.shape[4]):
        raise ValueError(f"features spatial size {(x.shape[3], x.shape[4])} differs from the context's {spatial}")
