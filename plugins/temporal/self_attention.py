"""The temporal baseline MEMO replaces: softmax self-attention over [last N motion frames ; clip].

Spec T7 (Hallo/EMO/AnimateDiff style). Holds the immutable context
``SelfAttentionContext``, the module ``SelfAttentionTemporal`` and its factory ``build``; its config
``SelfAttentionConfig`` lives in the torch-free ``configs``. Its time
and memory grow with N, which is what the benchmark compares against T1-T4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memo_zoo.model.attention import merge_heads, split_heads

# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import SelfAttentionConfig
from .context import (
    FrameAttention,
    check_features,
    check_motion,
    from_tokens,
)


@dataclass(frozen=True)
class SelfAttentionContext:
    """The last N motion frames of one video batch. Immutable: ``update_context`` returns a new one.

    tokens:      normalised motion tokens (B*H*W, n, C) with n <= N, oldest first, or None.
    key, value:  their projections with positions applied, (B*H*W, heads, n, d), cached so that
                 every denoising step reuses them (T6); None when n == 0. They are computed with
                 the weights of the moment: build a fresh context after the weights change.
    """

    batch: int
    tokens: Tensor | None = None
    key: Tensor | None = None
    value: Tensor | None = None
    spatial: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        return 0 if self.tokens is None else self.tokens.shape[1]


def sinusoidal_positions(length: int, channels: int) -> Tensor:
    """AnimateDiff's frame-position table (length, channels): sin on even, cos on odd channels."""
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    div = torch.exp(torch.arange(0, channels, 2, dtype=torch.float64) * (-math.log(10000.0) / channels))
    table = torch.zeros(length, channels, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : channels // 2]
    return table.float()


class SelfAttentionTemporal(FrameAttention):
    """Softmax attention of the current frames over [last N motion frames ; current frames] (T7).

    Queries are the current frames only, and only they are returned. Frame positions: the current
    frames always sit at N..N+F-1 and the n <= N stored motion frames right before them, so a
    clip's own encoding does not depend on how much history exists yet. Positions are added to the
    inputs of the q and k projections only (values carry content, not position).

    Output = x + to_out(attention), ``to_out`` zero-initialised (A6).
    """

    config: SelfAttentionConfig

    def __init__(self, config: SelfAttentionConfig, channels: int) -> None:
        super().__init__(config, channels)
        # Derived from the config, so it is kept out of the state dict.
        self.register_buffer("positions", sinusoidal_positions(config.max_positions, channels), persistent=False)

    def new_context(self, batch: int) -> SelfAttentionContext:
        """No motion frames yet."""
        return SelfAttentionContext(batch=batch)

    def _pos(self, start: int, length: int, like: Tensor) -> Tensor:
        if start + length > self.config.max_positions:
            raise ValueError(
                f"{start + length} frame positions needed but max_positions is {self.config.max_positions}"
            )
        return self.positions[start : start + length].to(like)

    def update_context(self, ctx: SelfAttentionContext, motion: Tensor) -> SelfAttentionContext:
        """Append the motion frames (B, Fm, C, H, W), oldest first, and keep the last N (T7)."""
        check_motion(motion, ctx.batch, self.channels)
        spatial = (motion.shape[3], motion.shape[4])
        if ctx.spatial is not None and ctx.spatial != spatial:
            raise ValueError(f"motion spatial size {spatial} differs from the context's {ctx.spatial}")
        n_max = self.config.motion_frames
        if n_max == 0:
            return SelfAttentionContext(batch=ctx.batch, spatial=spatial)
        # Only the frames that can survive the window are normalised.
        new = self.norm(motion[:, -n_max:])
        tokens = new if ctx.tokens is None else torch.cat([ctx.tokens.to(new), new], dim=1)[:, -n_max:]
        n = tokens.shape[1]
        pos = self._pos(n_max - n, n, tokens)
        key = split_heads(self.to_k(tokens + pos), self.heads)
        value = split_heads(self.to_v(tokens), self.heads)
        return SelfAttentionContext(batch=ctx.batch, tokens=tokens, key=key, value=value, spatial=spatial)

    def forward(self, x: Tensor, ctx: SelfAttentionContext | None = None) -> Tensor:
        """(B, F, C, H, W) -> same shape and dtype; reads ``ctx`` (None = no motion frames)."""
        b, f, c, h, w = x.shape
        check_features(x, ctx, self.channels)
        tokens = self.norm(x)
        positioned = tokens + self._pos(self.config.motion_frames, f, tokens)
        q = split_heads(self.to_q(positioned), self.heads)
        k = split_heads(self.to_k(positioned), self.heads)
        v = split_heads(self.to_v(tokens), self.heads)
        if ctx is not None and ctx.key is not None:
            k = torch.cat([ctx.key.to(k), k], dim=2)
            v = torch.cat([ctx.value.to(v), v], dim=2)
        out = merge_heads(F.scaled_dot_product_attention(q, k, v))
        return x + from_tokens(self.to_out(out), b, h, w)


def build(config: SelfAttentionConfig, channels: int) -> SelfAttentionTemporal:
    """Factory of the ``self_attention`` temporal component (spec T7)."""
    return SelfAttentionTemporal(config, channels)
