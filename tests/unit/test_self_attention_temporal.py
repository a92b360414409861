"""Tests of the temporal baselines: self-attention over motion frames (spec T7) and ``none``.

Identity at init (A6), shapes and dtypes, gradients, state dicts and seeding are checked for every
registered temporal component in tests/plugins/test_contracts.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memo_zoo.slots.temporal import TemporalModule
from memo_zoo_plugins.temporal import identity
from memo_zoo_plugins.temporal.self_attention import (
    SelfAttentionConfig,
    SelfAttentionTemporal,
    build,
    sinusoidal_positions,
)

H, W = 1, 2


def _module(seed: int = 0, channels: int = 8, dtype=torch.float64, **options) -> SelfAttentionTemporal:
    """A module whose output projection is the identity, so ``module(x) - x`` is the attention."""
    torch.manual_seed(seed)
    module = build(SelfAttentionConfig(**options), channels=channels).to(dtype)
    with torch.no_grad():
        module.to_out.weight.copy_(torch.eye(channels, dtype=dtype))
        module.norm.inner.weight.normal_()
        module.norm.inner.bias.normal_()
    return module


def _tokens(module, x):
    b, f, c, h, w = x.shape
    ln = module.norm.inner
    return F.layer_norm(x.permute(0, 3, 4, 1, 2).reshape(b * h * w, f, c), (c,), ln.weight, ln.bias, ln.eps)


def _reference(module: SelfAttentionTemporal, motion_frames: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V over [last N motion frames ; current frames], queries = current only."""
    n_max, heads = module.config.motion_frames, module.heads
    b, f, c, h, w = x.shape
    d = c // heads
    history = torch.cat(motion_frames, dim=1) if motion_frames else x[:, :0]
    n = min(n_max, history.shape[1])
    history = history[:, history.shape[1] - n :]
    mem, cur = _tokens(module, history), _tokens(module, x)
    pe = sinusoidal_positions(module.config.max_positions, c).to(x.dtype)
    keys_in = torch.cat([mem + pe[n_max - n : n_max], cur + pe[n_max : n_max + f]], dim=1)
    values_in = torch.cat([mem, cur], dim=1)
    q_all = (cur + pe[n_max : n_max + f]) @ module.to_q.weight.T
    k_all = keys_in @ module.to_k.weight.T
    v_all = values_in @ module.to_v.weight.T
    out = torch.empty_like(cur)
    for head in range(heads):
        sl = slice(head * d, (head + 1) * d)
        scores = q_all[..., sl] @ k_all[..., sl].transpose(-1, -2) / math.sqrt(d)
        probs = torch.exp(scores - scores.amax(-1, keepdim=True))
        probs = probs / probs.sum(-1, keepdim=True)
        out[..., sl] = probs @ v_all[..., sl]
    return out.reshape(b, h, w, f, c).permute(0, 3, 4, 1, 2)


@settings(max_examples=20, deadline=None, database=None)
@given(
    clip_lengths=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    motion_frames=st.integers(0, 5),
    heads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_t7_equals_explicit_softmax_attention_over_concatenation(clip_lengths, motion_frames, heads, seed):
    """T7: each clip's output == explicit softmax attention over [last N motion frames ; clip]."""
    module = _module(seed, channels=4 * heads, heads=heads, motion_frames=motion_frames, max_positions=12)
    clips = [torch.randn(2, f, 4 * heads, H, W, dtype=torch.float64) for f in clip_lengths]
    ctx, seen = module.new_context(2), []
    with torch.no_grad():
        for clip in clips:
            torch.testing.assert_close(module(clip, ctx) - clip, _reference(module, seen, clip), atol=1e-10, rtol=1e-9)
            ctx = module.update_context(ctx, clip)
            seen.append(clip)


def test_t7_context_keeps_only_the_last_n_frames():
    """T7: the context holds the normalised tokens of the last N motion frames, oldest first."""
    module = _module(1, motion_frames=3)
    stream = torch.randn(1, 7, 8, H, W, dtype=torch.float64)
    ctx = module.new_context(1)
    with torch.no_grad():
        for start, stop in ((0, 2), (2, 3), (3, 7)):
            ctx = module.update_context(ctx, stream[:, start:stop])
            want = _tokens(module, stream[:, max(0, stop - 3) : stop])
            assert ctx.num_frames == min(3, stop)
            torch.testing.assert_close(ctx.tokens, want)


def test_t7_zero_motion_frames_attends_to_the_clip_only():
    """T7 with N = 0: no context is kept and the output is self-attention within the clip."""
    module = _module(2, motion_frames=0, heads=2)
    x = torch.randn(2, 5, 8, H, W, dtype=torch.float64)
    with torch.no_grad():
        ctx = module.update_context(module.new_context(2), torch.randn(2, 4, 8, H, W, dtype=torch.float64))
        assert ctx.num_frames == 0 and ctx.key is None
        torch.testing.assert_close(module(x, ctx) - x, _reference(module, [], x))


def test_t7_positions_must_fit_and_stay_out_of_the_state_dict():
    """T7: N + clip length beyond max_positions is an error, not a silent wrap-around; positions
    derive from the config, so checkpoints do not hold them."""
    module = build(SelfAttentionConfig(heads=2, motion_frames=4, max_positions=8), channels=8)
    assert isinstance(module, TemporalModule)
    assert "positions" not in module.state_dict()
    with pytest.raises(ValueError):
        module(torch.randn(1, 5, 8, H, W), None)
    with pytest.raises(ValidationError):
        SelfAttentionConfig(motion_frames=8, max_positions=8)



def test_t7_bfloat16_forward():
    """T7 in bf16: output dtype bf16 and close to the float32 result."""
    m32 = _module(3, heads=2, dtype=torch.float32)
    m16 = _module(3, heads=2, dtype=torch.bfloat16)
    motion, x = torch.randn(1, 6, 8, H, W), torch.randn(1, 4, 8, H, W)
    with torch.no_grad():
        y16 = m16(x.bfloat16(), m16.update_context(m16.new_context(1), motion.bfloat16()))
        y32 = m32(x, m32.update_context(m32.new_context(1), motion))
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), y32, atol=0.1, rtol=0.05)



def test_none_temporal_is_identity_without_parameters():
    """``none`` (ablation floor of spec §2): output is the input, no parameters, empty context."""
    module = identity.build(identity.NoTemporalConfig(), channels=8)
    assert isinstance(module, TemporalModule) and not list(module.parameters())
    x = torch.randn(1, 3, 8, H, W, dtype=torch.bfloat16)
    ctx = module.update_context(module.new_context(1), torch.randn(1, 2, 8, H, W))
    assert module(x, ctx) is x and ctx == module.new_context(1)
    with pytest.raises(ValidationError):
        identity.NoTemporalConfig(gamma=0.5)
