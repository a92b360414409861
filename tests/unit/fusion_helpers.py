"""Helpers shared by the audio-fusion unit tests (cross attention E2, multi-modal attention E1)."""

from __future__ import annotations

import math
from typing import Callable

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from memo_zoo_plugins.audio_fusion.emo_adanorm import EmoAdaNorm


def perturbed(build: Callable[..., nn.Module], config, seed: int, channels: int, audio_dim: int,
              dtype: torch.dtype = torch.float64) -> nn.Module:
    """``build(config)`` under ``seed``, with every zero-initialised layer set to random values.

    The output projections (zero Linears, A6) get N(0, 1) weights and biases, the Emo-AdaNorm
    modulations N(0, 0.5^2), so that the module is no longer the identity and labels matter.
    """
    torch.manual_seed(seed)
    module = build(config, channels=channels, audio_dim=audio_dim).to(dtype)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, EmoAdaNorm):
                layer.modulation.weight.normal_(std=0.5)
                layer.modulation.bias.normal_(std=0.5)
        for layer in module.modules():
            if isinstance(layer, nn.Linear) and layer.bias is not None and not layer.weight.any():
                layer.weight.normal_()
                layer.bias.normal_()
    return module


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V of (N, L, heads*d) tokens, one head at a time, without reshaping."""
    d = q.shape[-1] // heads
    out = torch.empty_like(q)
    for head in range(heads):
        sl = slice(head * d, (head + 1) * d)
        scores = q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(d)
        probs = torch.exp(scores - scores.amax(-1, keepdim=True))
        out[..., sl] = (probs / probs.sum(-1, keepdim=True)) @ v[..., sl]
    return out


def reference_cases(test):
    """Hypothesis cases for the reference tests: head layout, widths, token counts, emotion on/off."""
    return settings(max_examples=20, deadline=None, database=None)(
        given(
            heads=st.sampled_from([1, 2, 4]),
            head_dim=st.integers(1, 3),
            audio_dim=st.integers(1, 6),
            length=st.integers(1, 5),
            audio_tokens=st.integers(1, 4),
            emotion_conditioning=st.booleans(),
            seed=st.integers(0, 2**16),
        )(test)
    )


def bfloat16_and_float32_outputs(make: Callable[..., nn.Module]):
    """Outputs of the same perturbed module (8 channels, 6 audio dims, 2 heads) run in bf16 and in fp32."""
    m32, m16 = make(2, 8, 6, dtype=torch.float32, heads=2), make(2, 8, 6, dtype=torch.bfloat16, heads=2)
    video, audio, emotion = torch.randn(2, 4, 8), torch.randn(2, 3, 6), torch.tensor([1, 2])
    with torch.no_grad():
        return m16(video.bfloat16(), audio.bfloat16(), emotion), m32(video, audio, emotion)
