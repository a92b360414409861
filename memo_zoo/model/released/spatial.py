"""The release's spatial transformers, shared by its two UNets (A2, A3; golden README Q10-Q13).

One layout serves both: ``norm`` (GroupNorm, eps 1e-6, Q9) -> ``proj_in`` (1x1 conv) -> one block
``transformer_blocks.0`` = {``norm1``, ``attn1``, ``norm2``, ``attn2``, ``norm3``, ``ff``} ->
``proj_out`` (1x1 conv) + residual. The parameter names are those of the released checkpoint, and
the parts are diffusers' (``Attention``, ``FeedForward``) so the weights load unchanged.

The two networks run the block differently:

* Reference Net (A2, ``BasicTransformerBlock``): records ``norm1``'s output, the per-layer
  feature the Diffusion Net reads (Q13). Its last block is *final*: it stops right after
  ``norm1`` and has no attention, feed-forward or ``proj_out`` (the release never built them).
* Diffusion Net (A3, ``TemporalBasicTransformerBlock``): ``attn1`` attends over [own tokens ;
  the reference image's tokens at this layer] for conditional rows, and over the own tokens only
  for rows marked unconditional (Q10); ``attn2`` reads the image tokens (A4).

Reference K/V cache (the GPU fast path, ``memo_zoo.generate.fast_path``): the reference tokens a
Diffusion Net block receives are the same at every denoising step of a video (the Reference Net
runs once per video, A2), but they arrive as rows rebuilt at every call. With
``cache_reference_kv`` on (and no gradients recorded), a block keeps the last reference rows with
the keys and values it projected from them (the last ``CACHE_ENTRIES`` sets: a sampler may
alternate between a few) and reuses those while the rows come back equal
(``torch.equal``: exact, and far cheaper than the two projections it saves), with the same
weights and autocast dtype. Both attention paths are ``F.scaled_dot_product_attention`` (diffusers'
``AttnProcessor2_0`` for the plain one); the cached path projects [own ; reference] tokens in two
pieces instead of one, equal to the uncached path up to float rounding. The cache holds the
reference rows and their keys and values per block until newer ones push them out or
``clear_cache``.

Under ``torch.compile`` the block takes a graph-friendly path: the unconditional rows get the
reference keys masked out of one SDPA call instead of being split off by a data-dependent branch,
and the cache is not consulted, so the Diffusion Net traces as one graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from memo_zoo.model.attention import merge_heads, split_heads
from memo_zoo.model.reference_attention import CACHE_ENTRIES, kv_cache_key


class ReleasedTransformerBlock(nn.Module):
    """``transformer_blocks.0`` of a spatial transformer: LayerNorms (eps 1e-5), self-attention,
    cross-attention to ``cross_dim`` tokens, GEGLU feed-forward; no q/k/v biases (Q6)."""

    def __init__(self, dim: int, heads: int, cross_dim: int, *, final: bool = False,
                 upcast_attention: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.final = final
        self.cache_reference_kv = False  # set by memo_zoo.generate.fast_path (module docstring)
        self._kv: list[tuple[Tensor, tuple, tuple[Tensor, Tensor]]] = []  # newest last
        self.norm1 = nn.LayerNorm(dim)
        if final:
            return
        head_dim = dim // heads
        self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=head_dim, dropout=dropout, bias=False,
                               upcast_attention=upcast_attention)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(query_dim=dim, cross_attention_dim=cross_dim, heads=heads, dim_head=head_dim,
                               dropout=dropout, bias=False, upcast_attention=upcast_attention)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dropout=dropout, activation_fn="geglu")

    def _rest(self, tokens: Tensor, context: Tensor) -> Tensor:
        """Cross-attention and feed-forward, each with its residual."""
        tokens = self.attn2(self.norm2(tokens), encoder_hidden_states=context) + tokens
        return self.ff(self.norm3(tokens)) + tokens

    def reference_forward(self, tokens: Tensor, context: Tensor) -> tuple[Tensor | None, Tensor]:
        """Reference Net block (A2): ``(tokens out or None when final, norm1 output (N, L, C))``."""
        normed = self.norm1(tokens)
        if self.final:
            return None, normed
        tokens = self.attn1(normed) + tokens
        return self._rest(tokens, context), normed

    def diffusion_forward(self, tokens: Tensor, reference: Tensor | None, context: Tensor,
                          uncond: Tensor | None) -> Tensor:
        """Diffusion Net block (A3, Q10).

        tokens:    (N, L, C), N = B*F rows ordered (b f).
        reference: (N, L', C) the reference image's tokens for each row, or None (no reference).
        context:   (N, K, D) the image tokens for each row.
        uncond:    (N,) bool, True = that row attends over its own tokens only; None = no such row.
        """
        normed = self.norm1(tokens)
        if reference is None:
            return self._rest(self.attn1(normed) + tokens, context)
        reference = reference.to(normed.dtype)
        if torch.compiler.is_compiling():
            # Under torch.compile: no data-dependent branch or row gather (each would break the
            # graph at every block); unconditional rows mask the reference keys out instead.
            return self._rest(self._attend_masked(normed, reference, uncond) + tokens, context)
        if uncond is None or not bool(uncond.any()):
            attended = self._attend_with_reference(normed, reference)
        else:
            # Each row's attention is independent of the others, so the two kinds of rows are
            # computed apart and put back in place.
            attended = torch.empty_like(normed)
            cond = ~uncond
            attended[uncond] = self.attn1(normed[uncond])
            if bool(cond.any()):
                attended[cond] = self._attend_with_reference(normed[cond], reference[cond])
        return self._rest(attended + tokens, context)

    def _attend_with_reference(self, normed: Tensor, reference: Tensor) -> Tensor:
        """attn1 of ``normed`` (N, L, C) over [normed ; reference] (N, L + L', C) (A3)."""
        attn = self.attn1
        if not self.cache_reference_kv or torch.is_grad_enabled():
            return attn(normed, encoder_hidden_states=torch.cat([normed, reference], dim=1))
        return self._attend(normed, self._reference_kv(reference))

    def _attend_masked(self, normed: Tensor, reference: Tensor, uncond: Tensor | None) -> Tensor:
        """attn1 of every row over [normed ; reference], the reference keys hidden from the rows
        where ``uncond`` (N,) is True: the split of ``diffusion_forward`` as one masked call (Q10).
        The reference K/V cache is not consulted (its lookup would break a compiled graph)."""
        attn = self.attn1
        keep = None
        if uncond is not None:
            n, length = normed.shape[:2]
            own = torch.ones(n, length, dtype=torch.bool, device=normed.device)
            ref = (~uncond.to(device=normed.device, dtype=torch.bool))[:, None].expand(n, reference.shape[1])
            keep = torch.cat([own, ref], dim=1)[:, None, None, :]
        return self._attend(normed, (attn.to_k(reference), attn.to_v(reference)), keep)

    def _attend(self, normed: Tensor, reference_kv: tuple[Tensor, Tensor], keep: Tensor | None = None) -> Tensor:
        """attn1 with the reference's keys/values given: SDPA over [own ; reference] keys."""
        attn = self.attn1
        query = attn.to_q(normed)
        key = torch.cat([attn.to_k(normed), reference_kv[0]], dim=1)
        value = torch.cat([attn.to_v(normed), reference_kv[1]], dim=1)
        out = F.scaled_dot_product_attention(*(split_heads(t, attn.heads) for t in (query, key, value)),
                                             attn_mask=keep)
        # attn1 has no residual, rescale or norms (diffusers' defaults, as built above): out-projection, dropout
        return attn.to_out[1](attn.to_out[0](merge_heads(out).to(query.dtype)))

    @torch.compiler.disable  # Python-side bookkeeping and a data-dependent check; never traced (see the caller)
    def _reference_kv(self, reference: Tensor) -> tuple[Tensor, Tensor]:
        """attn1's (keys, values) of the reference rows (N, L', C), cached (module docstring)."""
        key = kv_cache_key(self.attn1, reference, reference.dtype)
        for rows, entry_key, kv in self._kv:
            if entry_key != key:
                continue
            if rows is reference or (rows.shape == reference.shape and rows.device == reference.device
                                     and torch.equal(rows, reference)):
                return kv
        kv = (self.attn1.to_k(reference), self.attn1.to_v(reference))
        self._kv = (self._kv + [(reference, key, kv)])[-CACHE_ENTRIES:]  # the oldest goes first
        return kv

    def clear_cache(self) -> None:
        """Drop the cached reference rows and their keys/values."""
        self._kv = []


class ReleasedSpatialTransformer(nn.Module):
    """``attentions.<j>`` of a UNet level: GroupNorm -> 1x1 conv -> one block -> 1x1 conv + residual."""

    def __init__(self, channels: int, heads: int, cross_dim: int, groups: int, *, final: bool = False,
                 upcast_attention: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        inner = heads * (channels // heads)
        self.final = final
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, kernel_size=1)
        self.transformer_blocks = nn.ModuleList([
            ReleasedTransformerBlock(inner, heads, cross_dim, final=final, upcast_attention=upcast_attention,
                                     dropout=dropout)])
        if not final:
            self.proj_out = nn.Conv2d(inner, channels, kernel_size=1)

    def _tokens(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        x = self.proj_in(self.norm(x))
        return x.permute(0, 2, 3, 1).reshape(n, h * w, x.shape[1])

    def _image(self, tokens: Tensor, residual: Tensor) -> Tensor:
        n, _, h, w = residual.shape
        x = tokens.reshape(n, h, w, tokens.shape[-1]).permute(0, 3, 1, 2).contiguous()
        return self.proj_out(x) + residual

    def reference_forward(self, x: Tensor, context: Tensor) -> tuple[Tensor | None, Tensor]:
        """(N, C, H, W) -> (output or None when final, the block's norm1 output (N, H*W, C)) (Q13)."""
        tokens, feature = self.transformer_blocks[0].reference_forward(self._tokens(x), context)
        if tokens is None:
            return None, feature
        return self._image(tokens, x), feature

    def diffusion_forward(self, x: Tensor, reference: Tensor | None, context: Tensor,
                          uncond: Tensor | None) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W); see :meth:`ReleasedTransformerBlock.diffusion_forward`."""
        tokens = self.transformer_blocks[0].diffusion_forward(self._tokens(x), reference, context, uncond)
        return self._image(tokens, x)
