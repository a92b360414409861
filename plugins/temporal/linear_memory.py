"""MEMO's memory-guided temporal module: linear attention over the clip plus a decayed motion memory.

Spec T1-T6 (paper Sec. 4.1, Eq. 2-4, App. D), with the authors' released-code variants of §10 as
options. Holds the immutable context (``LinearMemoryContext``), the module (``LinearMemoryTemporal``)
and its factory ``build``; the config (``LinearMemoryConfig``) lives in the torch-free ``configs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from memo_zoo.model.attention import merge_heads

# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import LinearMemoryConfig
from .context import (
    FrameAttention,
    accumulation_dtype,
    check_features,
    check_motion,
    from_tokens,
    softmax_last,
)


@dataclass(frozen=True)
class LinearMemoryContext:
    """Motion memory of one video batch (T2). Immutable: ``update_context`` returns a new one.

    kv:  M_KV, (B*H*W, heads, d, d), or None while nothing was seen.
    k:   M_K,  (B*H*W, heads, d),    or None while nothing was seen.
    Both are kept in float32 (float64 when the features are float64) whatever the features' dtype.
    Their size never depends on ``frames_seen`` (T2).
    """

    batch: int
    kv: Tensor | None = None
    k: Tensor | None = None
    frames_seen: int = 0
    spatial: tuple[int, int] | None = None

    @property
    def empty(self) -> bool:
        return self.kv is None


class LinearMemoryTemporal(FrameAttention):
    """Memory-guided linear attention over frames (spec T1-T6).

    Per spatial position the frames form a sequence (B*H*W, F, C). With phi the feature map:

    - T1: H_KV = sum_j phi(K_j) V_j^T, H_K = sum_j phi(K_j) over the current clip, undecayed.
    - T3: out_i = phi(Q_i)^T (H_KV + M_KV) / (phi(Q_i)^T (H_K + M_K) + eps).
    - T4: ``update_context`` folds the a motion frames in with the causal decay (see config).
    - Output = x + to_out(out), ``to_out`` zero-initialised (A6).

    Normalisation: a per-frame norm (``config.norm``) before the q/k/v projections, applied to the
    current frames and to the motion frames alike, so the memory holds exactly what those frames
    contributed as a current clip. No frame positions: the decay is the positional signal (paper
    Sec. 4.1).

    Gradients flow through ``update_context`` too (training builds the memory from 16 motion
    frames, T5); wrap it in ``torch.no_grad()`` at inference or to detach the motion path as the
    released code does.

    Released variant (§10): "0.9 * memory + current k v^T inside a call" is read as the recurrence
    that builds the new frames' decayed sum (newest frame weight gamma^0, k back gamma^(k-1)), and
    "memory * 0.9^16 + new decayed sum between clips" as a carry of the old memory by a fixed
    gamma^S. With a = S = 16 that is the paper's memory divided by gamma: the newest past frame
    weighs as much as a current one. The released processor's source was not at hand to confirm
    this reading. T3's normaliser is kept in both variants; with feature_map='released' the
    current clip's share of it is exactly 1 per query (each key channel sums to 1 over frames,
    each query to 1 over channels). The released code seeds the first clip's memory with the
    reference image's features repeated 16 times: that is the caller's ``update_context`` call.
    """

    config: LinearMemoryConfig

    def new_context(self, batch: int) -> LinearMemoryContext:
        """An empty memory for ``batch`` videos (zero M_KV and M_K)."""
        return LinearMemoryContext(batch=batch)

    def _split(self, t: Tensor, dtype: torch.dtype) -> Tensor:
        """(N, F, C) -> (N, F, heads, d): contiguous, so softmax over d or F runs on the fast path."""
        n, f, _ = t.shape
        return t.reshape(n, f, self.heads, self.head_dim).to(dtype)

    def _phi_k_v(self, tokens: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """phi(K) and V of (N, F, C) tokens as (N, heads, F, d)."""
        k = self._split(self.to_k(tokens), dtype)
        # 'released' normalises each key channel over the frames of its own group (clip or motion batch).
        phi_k = k.softmax(dim=1) if self.config.feature_map == "released" else softmax_last(k)
        return phi_k.transpose(1, 2), self._split(self.to_v(tokens), dtype).transpose(1, 2)

    def update_context(self, ctx: LinearMemoryContext, motion: Tensor) -> LinearMemoryContext:
        """Fold the clean motion frames (B, Fm, C, H, W), oldest first, into the memory (T4, T6).

        Returns a new context; ``ctx`` stays valid and unchanged. Call once per clip.
        """
        check_motion(motion, ctx.batch, self.channels)
        a = motion.shape[1]
        spatial = (motion.shape[3], motion.shape[4])
        if ctx.spatial is not None and ctx.spatial != spatial:
            raise ValueError(f"motion spatial size {spatial} differs from the memory's {ctx.spatial}")
        if a == 0:
            return ctx
        phi_k, v = self._phi_k_v(self.norm(motion), accumulation_dtype(motion.dtype))
        gamma = self.config.gamma
        if self.config.update == "paper":
            # Frame index i (0 = oldest) is k = a - i frames back from the newest: weight gamma^k.
            weights = [gamma ** (a - i) for i in range(a)]
            carry = gamma**a
        else:
            weights = [gamma ** (a - 1 - i) for i in range(a)]
            carry = gamma**self.config.released_decay_frames
        w = torch.tensor(weights, dtype=phi_k.dtype, device=phi_k.device).view(1, 1, a, 1)
        weighted = phi_k * w
        new_kv = weighted.transpose(-1, -2) @ v
        new_k = weighted.sum(dim=-2)
        if ctx.kv is not None:
            new_kv = new_kv + carry * ctx.kv.to(new_kv)
            new_k = new_k + carry * ctx.k.to(new_k)
        return LinearMemoryContext(
            batch=ctx.batch, kv=new_kv, k=new_k, frames_seen=ctx.frames_seen + a, spatial=spatial
        )

    def merge_contexts(self, parts: list[tuple[Tensor, LinearMemoryContext]], batch: int) -> LinearMemoryContext:
        """One memory for ``batch`` videos from the memories of disjoint groups of them: ``parts``
        pairs each group's video indices (long) with its memory. A group's empty memory becomes
        zero M_KV and M_K, which ``forward`` reads exactly as no memory (it adds them). Training
        builds memories from different motion-frame counts per group (T5) and then runs one
        forward for the whole batch; gradients reach every group's memory."""
        full = [ctx for _, ctx in parts if not ctx.empty]
        if not full:
            return self.new_context(batch)
        first = full[0]
        cells = first.spatial[0] * first.spatial[1]
        kv = first.kv.new_zeros(batch, cells, *first.kv.shape[1:])
        k = first.k.new_zeros(batch, cells, *first.k.shape[1:])
        for index, ctx in parts:
            if not ctx.empty:
                kv = kv.index_copy(0, index, ctx.kv.reshape(len(index), cells, *ctx.kv.shape[1:]).to(kv))
                k = k.index_copy(0, index, ctx.k.reshape(len(index), cells, *ctx.k.shape[1:]).to(k))
        return LinearMemoryContext(batch=batch, kv=kv.flatten(0, 1), k=k.flatten(0, 1),
                                   frames_seen=max(ctx.frames_seen for _, ctx in parts), spatial=first.spatial)

    def forward(self, x: Tensor, ctx: LinearMemoryContext | None = None) -> Tensor:
        """(B, F, C, H, W) -> same shape and dtype; reads ``ctx`` (None = empty memory) (T1, T3)."""
        b, f, c, h, w = x.shape
        check_features(x, ctx, self.channels)
        tokens = self.norm(x)
        acc = accumulation_dtype(x.dtype)
        phi_q = softmax_last(self._split(self.to_q(tokens), acc)).transpose(1, 2)
        phi_k, v = self._phi_k_v(tokens, acc)
        kv = phi_k.transpose(-1, -2) @ v
        ksum = phi_k.sum(dim=-2)
        if ctx is not None and ctx.kv is not None:
            kv = kv + ctx.kv.to(kv)
            ksum = ksum + ctx.k.to(ksum)
        num = phi_q @ kv
        den = phi_q @ ksum.unsqueeze(-1)
        out = num / (den + self.config.eps)
        out = merge_heads(out.to(x.dtype))
        return x + from_tokens(self.to_out(out), b, h, w)


def build(config: LinearMemoryConfig, channels: int) -> LinearMemoryTemporal:
    """Factory of the ``linear_memory`` temporal component (spec T1-T6)."""
    return LinearMemoryTemporal(config, channels)
