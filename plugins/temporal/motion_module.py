"""The authors' released motion module as a temporal-slot kind (``motion_module``; spec T1-T6, §10).

Each of the released checkpoint's 21 motion modules (``*.motion_modules.N.`` in its
diffusion_net) is one :class:`MotionModule`; its ``state_dict()`` keys are the released keys under
that prefix, the ``pos_encoder.pe`` buffers included, so a released checkpoint loads strictly.
Holds the config (``MotionModuleConfig``), the immutable context (``MotionModuleContext``), the
module and its factory ``build``.

Data flow of one module, current clip x (B, F, C, H, W):

- per-frame GroupNorm (``norm_groups`` groups, eps 1e-6, whatever the host's group count) and
  ``proj_in`` (Linear C -> inner, inner = heads * (C // heads // dim_div));
- per transformer block, per attention block J: ``h = attn_J(norms.J(h) + pe[:F], memory_J) + h``;
  then ``h = ff(ff_norm(h)) + h`` with a GEGLU ``ff`` (exact gelu, width ``ff_mult * inner``);
- ``proj_out`` (inner -> C, zero-initialised, A6) and the outer residual ``x + ...``.

The motion frames take the same GroupNorm, ``proj_in`` and block LayerNorm, but no frame
positions, and every attention block of every transformer block reads the same ``proj_in``-ed
motion frames (they are not passed through the blocks).

Attention J (per head, hd = inner / heads, decay gamma = ``decay``):

- q = softmax over the head's channels, times hd**-0.5; k = softmax over the clip's F frames.
- Memory terms of n motion frames (oldest first), weight w_i = gamma**(n-1-i):
  KVc = sum_i w_i**2 mk_i^T mv_i (the release weights the keys AND the values, so the weight is
  squared here) and Zc = sum_i w_i mk_i, mk = softmax over the n motion frames.
- ``update_context``: empty memory -> (KVc, Zc); else KV <- gamma**n KV + KVc, Z <- gamma**n Z + Zc.
- ``forward``: KVt = gamma KV + sum_f k_f^T v_f, Zt = gamma Z + sum_f k_f,
  out = q KVt / clamp(q . Zt, min=1e-10), then ``to_out`` (Linear with bias).

The release's flags, per call ``module(x, motion, is_new_audio, update_past_memory)``, map onto
contexts (see :meth:`MotionModule.context_for_flags`):

- ``is_new_audio=True`` (every step of clip 0): the release resets its memory and rebuilds it from
  the motion frames. That is ``update_context(new_context(B), motion)``; the motion frames of a
  clip do not change between its steps, so the zoo builds it once per clip and reuses it (T6).
- ``is_new_audio=False, update_past_memory=True`` (step 0 of clip k > 0): one
  ``update_context(ctx, motion)``.
- ``is_new_audio=False, update_past_memory=False`` (later steps): the context is only read.

An empty context (``ctx=None`` or ``new_context``) is read as a zero memory: the output is the
released linear attention over the current clip alone (KVt = sum k^T v, Zt = sum k). The release
itself cannot be called that way: its read step multiplies a ``None`` memory and raises a
TypeError; its pipeline never gets there because clip 0 always rebuilds.

Differences from the zoo's own ``linear_memory`` kind (``plugins/temporal/linear_memory.py``,
even with ``feature_map: released, update: released``):

1. Wiring: GroupNorm + ``proj_in``, a LayerNorm per attention block, a GEGLU feed-forward with
   its own LayerNorm and a zero ``proj_out`` around the attention (AnimateDiff's motion module);
   ``linear_memory`` is one norm, bias-free q/k/v and a zero ``to_out``.
2. Sinusoidal frame positions added to the normed current frames (not to the motion frames);
   ``linear_memory`` has none.
3. The memory's KV weights are gamma**(2(n-1-i)) (key and value both weighted) while Z's are
   gamma**(n-1-i); ``linear_memory`` uses one weight for both.
4. The old memory is carried by gamma**n with n the number of motion frames of the update
   (``linear_memory``'s released reading uses a fixed gamma**16; the two agree for n = 16).
5. The memory is decayed once more when read: KVt = gamma * KV + clip term.
6. q is scaled by hd**-0.5 and the denominator is clamped at 1e-10 instead of adding an eps.
7. The motion path runs without gradients by default (``memory_gradients: false``), as in the
   release, where ``linear_memory`` lets gradients flow through ``update_context`` (T5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .configs import MotionModuleConfig  # noqa: F401  (re-exported: its old import path)
from .context import accumulation_dtype, check_features, check_motion, from_tokens, to_tokens

# The release hard-codes these (Q5, Q9): GroupNorm eps, LayerNorm eps (torch default), clamp floor.
GROUP_NORM_EPS = 1e-6
LAYER_NORM_EPS = 1e-5
DENOMINATOR_FLOOR = 1e-10


@dataclass(frozen=True)
class MotionModuleContext:
    """The decayed motion memory of one video batch (T2). Immutable: ``update_context`` returns a new one.

    memory: one (KV, Z) pair per attention block, transformer blocks outer, attention blocks inner;
            KV (B*H*W, heads, hd, hd), Z (B*H*W, heads, hd), rows ordered (b, h, w) row-major,
            in float32 (float64 for float64 features). None while nothing was seen.
    Reshaped to (B*H*W*heads, hd, hd) and (B*H*W*heads, 1, hd) they are the release's
    ``processor.memory`` tensors, row (b*H*W + d)*heads + head.
    """

    batch: int
    memory: tuple[tuple[Tensor, Tensor], ...] | None = None
    frames_seen: int = 0
    spatial: tuple[int, int] | None = None

    @property
    def empty(self) -> bool:
        return self.memory is None


def sinusoidal_table(length: int, channels: int) -> Tensor:
    """(1, length, channels) frame positions: sin on even channels, cos on odd ones (Q5).

    Computed in float32 like the release, so a fresh table equals a saved one.
    """
    position = torch.arange(length).unsqueeze(1)
    div = torch.exp(torch.arange(0, channels, 2) * (-math.log(10000.0) / channels))
    table = torch.zeros(1, length, channels)
    table[0, :, 0::2] = torch.sin(position * div)
    table[0, :, 1::2] = torch.cos(position * div)[:, : channels // 2]
    return table


class PositionTable(nn.Module):
    """Holds the saved buffer ``pe`` (persistent: the released checkpoint stores it)."""

    def __init__(self, channels: int, max_len: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(max_len, channels))

    def forward(self, tokens: Tensor) -> Tensor:
        """(N, F, C) -> tokens + pe[:F] (offset 0)."""
        frames = tokens.shape[1]
        if frames > self.pe.shape[1]:
            raise ValueError(f"a clip of {frames} frames exceeds pe_max_len ({self.pe.shape[1]})")
        return tokens + self.pe[:, :frames]


class GEGLU(nn.Module):
    """``proj`` to twice the width, then value * gelu(gate) (exact gelu; value is the first half)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU -> Linear as ``net.0`` / ``net.2``; ``net.1`` is the release's dropout slot (p = 0)."""

    def __init__(self, dim: int, mult: int) -> None:
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, mult * dim), nn.Identity(), nn.Linear(mult * dim, dim)])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class MemoryAttention(nn.Module):
    """One released memory linear-attention block over frames (T1-T4 in the §10 form).

    Works on tokens (B*H*W, frames, inner); its memory is passed in and out, never stored.
    """

    def __init__(self, config: MotionModuleConfig, inner: int, head_dim: int) -> None:
        super().__init__()
        self.heads = config.heads
        self.head_dim = head_dim
        self.decay = config.decay
        self.to_q = nn.Linear(inner, inner, bias=False)
        self.to_k = nn.Linear(inner, inner, bias=False)
        self.to_v = nn.Linear(inner, inner, bias=False)
        # Index 1 is the release's dropout (p = 0): kept so that the saved key is to_out.0.
        self.to_out = nn.ModuleList([nn.Linear(inner, inner), nn.Identity()])
        self.pos_encoder = PositionTable(inner, config.pe_max_len) if config.pe else None

    def _split(self, t: Tensor, dtype: torch.dtype) -> Tensor:
        """(N, F, inner) -> (N, F, heads, hd) in the accumulation dtype."""
        n, f, _ = t.shape
        return t.reshape(n, f, self.heads, self.head_dim).to(dtype)

    def memory_terms(self, motion: Tensor) -> tuple[Tensor, Tensor]:
        """(KVc, Zc) of block-normed motion tokens (N, n, inner), oldest first (T4, §10).

        KVc (N, heads, hd, hd) = sum_i w_i**2 mk_i^T mv_i, Zc (N, heads, hd) = sum_i w_i mk_i,
        w_i = decay**(n-1-i): the newest frame weighs 1. Keys are softmaxed over the n frames.
        """
        acc = accumulation_dtype(motion.dtype)
        k = self._split(self.to_k(motion), acc).softmax(dim=1)
        v = self._split(self.to_v(motion), acc)
        n = motion.shape[1]
        w = self.decay ** torch.arange(n - 1, -1, -1, device=motion.device, dtype=acc)
        w = w.view(1, n, 1, 1)
        k, v = k * w, v * w  # the release weights both factors
        return torch.einsum("nfhd,nfhe->nhde", k, v), k.sum(dim=1)

    def forward(self, tokens: Tensor, memory: tuple[Tensor, Tensor] | None) -> Tensor:
        """Block-normed tokens (N, F, inner) -> attention output (N, F, inner) (T1, T3).

        ``memory`` None is a zero memory: only the current clip's terms are read.
        """
        if self.pos_encoder is not None:
            tokens = self.pos_encoder(tokens)
        acc = accumulation_dtype(tokens.dtype)
        q = self._split(self.to_q(tokens), acc).softmax(dim=-1) * self.head_dim**-0.5
        k = self._split(self.to_k(tokens), acc).softmax(dim=1)
        v = self._split(self.to_v(tokens), acc)
        kv = torch.einsum("nfhd,nfhe->nhde", k, v)
        z = k.sum(dim=1)
        if memory is not None:
            kv = self.decay * memory[0].to(acc) + kv
            z = self.decay * memory[1].to(acc) + z
        num = torch.einsum("nfhd,nhde->nfhe", q, kv)
        den = torch.einsum("nfhd,nhd->nfh", q, z).unsqueeze(-1).clamp(min=DENOMINATOR_FLOOR)
        out = (num / den).flatten(2).to(tokens.dtype)
        for layer in self.to_out:
            out = layer(out)
        return out


class TransformerBlock(nn.Module):
    """``attention_blocks`` memory attentions, each after its own LayerNorm, then the GEGLU ff."""

    def __init__(self, config: MotionModuleConfig, inner: int, head_dim: int) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            MemoryAttention(config, inner, head_dim) for _ in range(config.attention_blocks)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(inner, eps=LAYER_NORM_EPS) for _ in range(config.attention_blocks))
        self.ff = FeedForward(inner, config.ff_mult)
        self.ff_norm = nn.LayerNorm(inner, eps=LAYER_NORM_EPS)


class TemporalTransformer(nn.Module):
    """GroupNorm, ``proj_in``, the transformer blocks and ``proj_out`` (zero-initialised, A6)."""

    def __init__(self, config: MotionModuleConfig, channels: int, inner: int, head_dim: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(config.norm_groups, channels, eps=GROUP_NORM_EPS, affine=True)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(config, inner, head_dim) for _ in range(config.transformer_blocks)
        )
        self.proj_out = nn.Linear(inner, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def tokens(self, x: Tensor) -> Tensor:
        """(B, F, C, H, W) -> per-frame GroupNorm -> (B*H*W, F, C) -> proj_in -> (B*H*W, F, inner)."""
        b, f, c, h, w = x.shape
        normed = self.norm(x.reshape(b * f, c, h, w)).reshape(b, f, c, h, w)
        return self.proj_in(to_tokens(normed))


class MotionModule(nn.Module):
    """The released ``MemoryLinearAttnTemporalModule`` behind the temporal-slot contract (T1-T6).

    Attribute names are the released state-dict keys (``temporal_transformer.norm.weight``, ...,
    ``temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe``).
    """

    def __init__(self, config: MotionModuleConfig, channels: int) -> None:
        super().__init__()
        if channels % config.norm_groups:
            raise ValueError(
                f"motion_module: channels ({channels}) must be divisible by norm_groups ({config.norm_groups})"
            )
        head_dim = channels // config.heads // config.dim_div
        if head_dim < 1:
            raise ValueError(
                f"motion_module: channels ({channels}) // heads ({config.heads}) // dim_div ({config.dim_div}) "
                "leaves no head width"
            )
        self.config = config
        self.channels = channels
        self.heads = config.heads
        self.head_dim = head_dim
        self.inner = config.heads * head_dim
        self.temporal_transformer = TemporalTransformer(config, channels, self.inner, head_dim)

    def _layers(self) -> list[tuple[MemoryAttention, nn.LayerNorm]]:
        """Every (attention, its LayerNorm), transformer blocks outer: the context's memory order."""
        return [
            (attention, norm)
            for block in self.temporal_transformer.transformer_blocks
            for attention, norm in zip(block.attention_blocks, block.norms)
        ]

    def new_context(self, batch: int) -> MotionModuleContext:
        """An empty memory for ``batch`` videos (read as zero by ``forward``)."""
        return MotionModuleContext(batch=batch)

    def update_context(self, ctx: MotionModuleContext, motion: Tensor) -> MotionModuleContext:
        """Fold the clean motion frames (B, Fm, C, H, W), oldest first, into every block's memory (T4, T6).

        ``motion`` is the release's ``motion_frames`` (b, c, n, h, w) with axes 1 and 2 swapped.
        Returns a new context; ``ctx`` stays valid and unchanged. Call once per clip.
        """
        check_motion(motion, ctx.batch, self.channels)
        spatial = (motion.shape[3], motion.shape[4])
        if ctx.spatial is not None and ctx.spatial != spatial:
            raise ValueError(f"motion spatial size {spatial} differs from the memory's {ctx.spatial}")
        n = motion.shape[1]
        if n == 0:
            return ctx
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.memory_gradients):
            tokens = self.temporal_transformer.tokens(motion)
            terms = [attention.memory_terms(norm(tokens)) for attention, norm in self._layers()]
        if ctx.memory is not None:
            carry = self.config.decay**n
            terms = [
                (old_kv.to(kv) * carry + kv, old_z.to(z) * carry + z)
                for (old_kv, old_z), (kv, z) in zip(ctx.memory, terms)
            ]
        return MotionModuleContext(
            batch=ctx.batch, memory=tuple(terms), frames_seen=ctx.frames_seen + n, spatial=spatial
        )

    def context_for_flags(
        self,
        ctx: MotionModuleContext | None,
        motion: Tensor,
        *,
        is_new_audio: bool,
        update_past_memory: bool,
    ) -> MotionModuleContext:
        """The context the release's processor would read for a call with these flags (T6).

        ``is_new_audio``: memory reset, then rebuilt from ``motion``. ``update_past_memory``: one
        update. Neither: ``ctx`` as it is (a missing one is empty).
        """
        if is_new_audio or ctx is None:
            ctx = self.new_context(motion.shape[0])
            return self.update_context(ctx, motion) if (is_new_audio or update_past_memory) else ctx
        return self.update_context(ctx, motion) if update_past_memory else ctx

    def forward(self, x: Tensor, ctx: MotionModuleContext | None = None) -> Tensor:
        """(B, F, C, H, W) -> same shape and dtype; reads ``ctx`` (None or empty = zero memory)."""
        check_features(x, ctx, self.channels)
        b, f, c, h, w = x.shape
        memory = ctx.memory if ctx is not None and ctx.memory is not None else None
        transformer = self.temporal_transformer
        hidden = transformer.tokens(x)
        layer = 0
        for block in transformer.transformer_blocks:
            for attention, norm in zip(block.attention_blocks, block.norms):
                hidden = attention(norm(hidden), None if memory is None else memory[layer]) + hidden
                layer += 1
            hidden = block.ff(block.ff_norm(hidden)) + hidden
        return x + from_tokens(transformer.proj_out(hidden), b, h, w)


def build(config: MotionModuleConfig, channels: int) -> MotionModule:
    """Factory of the ``motion_module`` temporal component (the released motion module, T1-T6, §10)."""
    return MotionModule(config, channels)
