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
"""

from __future__ import annotations

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn


class ReleasedTransformerBlock(nn.Module):
    """``transformer_blocks.0`` of a spatial transformer: LayerNorms (eps 1e-5), self-attention,
    cross-attention to ``cross_dim`` tokens, GEGLU feed-forward; no q/k/v biases (Q6)."""

    def __init__(self, dim: int, heads: int, cross_dim: int, *, final: bool = False,
                 upcast_attention: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.final = final
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
        keys = torch.cat([normed, reference.to(normed.dtype)], dim=1)
        if uncond is None or not bool(uncond.any()):
            attended = self.attn1(normed, encoder_hidden_states=keys)
        else:
            # Each row's attention is independent of the others, so the two kinds of rows are
            # computed apart and put back in place.
            attended = torch.empty_like(normed)
            cond = ~uncond
            attended[uncond] = self.attn1(normed[uncond])
            if bool(cond.any()):
                attended[cond] = self.attn1(normed[cond], encoder_hidden_states=keys[cond])
        return self._rest(attended + tokens, context)


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
