"""Tests of MEMO's memory-guided linear attention (spec T1-T6) against slow explicit references.

Identity at init (A6), shapes and dtypes, gradients, state dicts and seeding are checked for every
registered temporal component in tests/plugins/test_contracts.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memo_zoo.slots.temporal import TemporalModule
from memo_zoo_plugins.temporal.linear_memory import (
    LinearMemoryConfig,
    LinearMemoryContext,
    LinearMemoryTemporal,
    build,
)

H, W = 2, 1


def _module(seed: int = 0, channels: int = 8, dtype=torch.float64, **options) -> LinearMemoryTemporal:
    """A module whose zero-initialised output projection is set to the identity map.

    Then ``module(x) - x`` is the attention output itself, which the references compute.
    """
    torch.manual_seed(seed)
    module = build(LinearMemoryConfig(**options), channels=channels).to(dtype)
    with torch.no_grad():
        module.to_out.weight.copy_(torch.eye(channels, dtype=dtype))
        module.norm.inner.weight.normal_()
        module.norm.inner.bias.normal_()
    return module


def _qkv(module: LinearMemoryTemporal, x: torch.Tensor):
    """q, k, v as (tokens, frames, heads, d), written out without the module's reshaping helpers."""
    b, f, c, h, w = x.shape
    ln = module.norm.inner
    tokens = F.layer_norm(x.permute(0, 3, 4, 1, 2).reshape(b * h * w, f, c), (c,), ln.weight, ln.bias, ln.eps)
    split = lambda t: t.reshape(b * h * w, f, module.heads, c // module.heads)  # noqa: E731
    return tuple(split(tokens @ proj.weight.T) for proj in (module.to_q, module.to_k, module.to_v))


def _softmax(t: torch.Tensor, dim: int) -> torch.Tensor:
    e = torch.exp(t - t.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def _weighted_past(groups, gamma: float, update: str, span: int):
    """(weight, phi_k, v) of every past frame: the explicit decayed sum over ALL past frames."""
    frames = [(g, i) for g, (pk, _) in enumerate(groups) for i in range(pk.shape[1])]
    out = []
    for position, (g, i) in enumerate(frames):
        pk, v = groups[g]
        if update == "paper":
            back = len(frames) - position  # k = 1 for the newest past frame (T4)
            weight = gamma**back
        else:
            later_groups = len(groups) - 1 - g
            weight = gamma ** (span * later_groups) * gamma ** (pk.shape[1] - 1 - i)
        out.append((weight, pk[:, i], v[:, i]))
    return out


def _reference_stream(module: LinearMemoryTemporal, clips, cfg: LinearMemoryConfig):
    """Outputs of each clip when the previous clips' frames are the motion frames, with python loops."""
    groups, outputs = [], []
    for clip in clips:
        b, f, c, h, w = clip.shape
        q, k, v = _qkv(module, clip)
        pq = _softmax(q, -1)
        pk = _softmax(k, 1) if cfg.feature_map == "released" else _softmax(k, -1)
        num = torch.zeros_like(v)
        den = torch.zeros(v.shape[:-1], dtype=v.dtype)
        past = _weighted_past(groups, cfg.gamma, cfg.update, cfg.released_decay_frames)
        for i in range(f):
            for j in range(f):  # T1: current clip, undecayed
                s = (pq[:, i] * pk[:, j]).sum(-1)
                num[:, i] += s.unsqueeze(-1) * v[:, j]
                den[:, i] += s
            for weight, pk_p, v_p in past:  # T2/T3: memory
                s = (pq[:, i] * pk_p).sum(-1)
                num[:, i] += weight * s.unsqueeze(-1) * v_p
                den[:, i] += weight * s
        out = (num / (den + cfg.eps).unsqueeze(-1)).reshape(b, h, w, f, c).permute(0, 3, 4, 1, 2)
        outputs.append(out)
        groups.append((pk, v))
    return outputs


@settings(max_examples=30, deadline=None, database=None)
@given(
    clip_lengths=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    gamma=st.floats(0.0, 1.0, exclude_min=True),
    heads=st.sampled_from([1, 2]),
    head_dim=st.integers(1, 3),
    batch=st.integers(1, 2),
    feature_map=st.sampled_from(["softmax", "released"]),
    update=st.sampled_from(["paper", "released"]),
    span=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_t4_streaming_equals_explicit_decayed_sum(
    clip_lengths, gamma, heads, head_dim, batch, feature_map, update, span, seed
):
    """Spec property (a): clip-by-clip T4 updates == the explicit decayed sum over all past frames."""
    channels = heads * head_dim
    options = dict(heads=heads, gamma=gamma, feature_map=feature_map, update=update, released_decay_frames=span)
    module = _module(seed, channels, **options)
    clips = [torch.randn(batch, f, channels, H, W, dtype=torch.float64) for f in clip_lengths]
    expected = _reference_stream(module, clips, module.config)
    ctx = module.new_context(batch)
    with torch.no_grad():
        for clip, want in zip(clips, expected):
            got = module(clip, ctx) - clip
            torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)
            ctx = module.update_context(ctx, clip)
    assert ctx.frames_seen == sum(clip_lengths)


def _plain_linear_attention(module: LinearMemoryTemporal, x: torch.Tensor) -> torch.Tensor:
    """Linear attention over the clip alone in its quadratic form: A = phi(Q) phi(K)^T, out = A V / A 1."""
    b, f, c, h, w = x.shape
    q, k, v = (t.transpose(1, 2) for t in _qkv(module, x))  # (N, heads, F, d)
    a = _softmax(q, -1) @ _softmax(k, -1).transpose(-1, -2)
    out = (a @ v) / (a.sum(-1, keepdim=True) + module.config.eps)
    return out.transpose(1, 2).reshape(b, h, w, f, c).permute(0, 3, 4, 1, 2)


def test_t1_property_c_gamma_zero_reduces_to_plain_linear_attention():
    """Spec property (c): gamma = 0 and empty memory -> plain linear attention over each clip (T1)."""
    module = _module(3, gamma=0.0, heads=2)
    ctx = module.new_context(2)
    with torch.no_grad():
        for f in (3, 5, 2):
            clip = torch.randn(2, f, 8, H, W, dtype=torch.float64)
            want = _plain_linear_attention(module, clip)
            torch.testing.assert_close(module(clip, ctx) - clip, want, atol=1e-12, rtol=0)
            ctx = module.update_context(ctx, clip)
            assert torch.count_nonzero(ctx.kv) == 0 and torch.count_nonzero(ctx.k) == 0


def test_t1_empty_memory_is_plain_linear_attention_for_any_gamma():
    """T1/T3 with M = 0: the first clip of a video sees only itself."""
    module = _module(4, gamma=0.9, heads=4)
    clip = torch.randn(1, 6, 8, H, W, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(module(clip, module.new_context(1)) - clip, _plain_linear_attention(module, clip))
        torch.testing.assert_close(module(clip) - clip, _plain_linear_attention(module, clip))


def test_t2_memory_size_is_constant_in_frames_seen():
    """T2: M_KV (B*H*W, heads, d, d) and M_K (B*H*W, heads, d), whatever the number of frames seen."""
    module = build(LinearMemoryConfig(heads=2), channels=8)
    ctx = module.new_context(3)
    shapes = set()
    with torch.no_grad():
        for frames in (1, 16, 48, 5):
            ctx = module.update_context(ctx, torch.randn(3, frames, 8, 4, 2))
            shapes.add((tuple(ctx.kv.shape), tuple(ctx.k.shape)))
    assert shapes == {((3 * 4 * 2, 2, 4, 4), (3 * 4 * 2, 2, 4))}
    assert ctx.frames_seen == 70


def test_t6_context_is_immutable_and_reusable_across_denoising_steps():
    """T6: update_context returns a new context; forward only reads it, so steps can share it."""
    module = _module(5, heads=2, dtype=torch.float32)
    empty = module.new_context(1)
    motion = torch.randn(1, 4, 8, H, W)
    ctx = module.update_context(empty, motion)
    assert empty.empty and not ctx.empty and ctx is not empty
    kv, k = ctx.kv.clone(), ctx.k.clone()
    x = torch.randn(1, 3, 8, H, W)
    first = module(x, ctx)
    for _ in range(3):
        torch.testing.assert_close(module(x, ctx), first, atol=0, rtol=0)
    assert torch.equal(ctx.kv, kv) and torch.equal(ctx.k, k)
    with pytest.raises(AttributeError):
        ctx.kv = None  # type: ignore[misc]



def test_t3_bfloat16_forward_keeps_dtype_and_accumulates_in_float32():
    """T3/T4 in bf16: output in bf16, memory sums in float32, close to the float32 result."""
    m32 = _module(6, heads=2, dtype=torch.float32)
    m16 = _module(6, heads=2, dtype=torch.bfloat16)
    motion, x = torch.randn(1, 16, 8, H, W), torch.randn(1, 4, 8, H, W)
    with torch.no_grad():
        c16 = m16.update_context(m16.new_context(1), motion.bfloat16())
        y16 = m16(x.bfloat16(), c16)
        y32 = m32(x, m32.update_context(m32.new_context(1), motion))
    assert y16.dtype == torch.bfloat16 and c16.kv.dtype == torch.float32
    torch.testing.assert_close(y16.float(), y32, atol=0.1, rtol=0.05)




def test_group_norm_option_and_protocol():
    """The GroupNorm variant builds and the module satisfies the TemporalModule protocol (spec §2)."""
    module = build(LinearMemoryConfig(heads=2, norm="group", norm_groups=4), channels=8)
    assert isinstance(module, TemporalModule)
    x = torch.randn(1, 2, 8, 3, 3)
    assert torch.equal(module(x, module.update_context(module.new_context(1), x)), x)
    per_frame = F.group_norm(x.reshape(2, 8, 3, 3), 4, eps=1e-6).reshape(1, 2, 8, 3, 3)
    torch.testing.assert_close(module.norm(x), per_frame.permute(0, 3, 4, 1, 2).reshape(9, 2, 8))
    with pytest.raises(ValueError):
        build(LinearMemoryConfig(heads=2, norm="group", norm_groups=3), channels=8)


def test_config_validation():
    """Config: extra="forbid", gamma in [0, 1], channels divisible by heads, no ``kind`` field."""
    assert "kind" not in LinearMemoryConfig.model_fields
    assert LinearMemoryConfig().gamma == 0.9 and LinearMemoryConfig().update == "paper"
    for bad in ({"gamma": 1.5}, {"gamma": -0.1}, {"heads": 0}, {"feature_map": "elu"}, {"colour": 1}):
        with pytest.raises(ValidationError):
            LinearMemoryConfig(**bad)
    with pytest.raises(ValueError):
        build(LinearMemoryConfig(heads=3), channels=8)
    module = build(LinearMemoryConfig(heads=2), channels=8)
    with pytest.raises(ValueError):
        module.update_context(module.new_context(2), torch.randn(1, 3, 8, H, W))
    ctx = module.update_context(module.new_context(1), torch.randn(1, 3, 8, H, W))
    with pytest.raises(ValueError):
        module(torch.randn(1, 3, 8, H + 1, W), ctx)
    with pytest.raises(ValueError):
        module(torch.randn(2, 3, 8, H, W), ctx)
    assert isinstance(ctx, LinearMemoryContext)
