"""Attention helpers shared by the temporal and audio-fusion components (and later the model).

``split_heads`` / ``merge_heads`` move between token and per-head layouts; ``zero_linear`` builds
the zero-initialised output projections that make every new module start as the identity (A6).
"""

from __future__ import annotations

from torch import Tensor, nn


def split_heads(t: Tensor, heads: int) -> Tensor:
    """(N, L, heads*d) -> (N, heads, L, d)."""
    n, length, c = t.shape
    return t.reshape(n, length, heads, c // heads).transpose(1, 2)


def merge_heads(t: Tensor) -> Tensor:
    """(N, heads, L, d) -> (N, L, heads*d); inverse of :func:`split_heads`."""
    n, h, length, d = t.shape
    return t.transpose(1, 2).reshape(n, length, h * d)


def zero_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """A Linear whose weights and bias start at zero (A6: a new module starts as the identity)."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    nn.init.zeros_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer
