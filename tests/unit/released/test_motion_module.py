"""Tests of the ``motion_module`` temporal kind (the released motion module; T1-T6, §10, A6) against
slow loop references written from the equations, plus the temporal contract kit.

Parity with the released code itself is tests/unit/released/test_motion_module_parity.py.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memo_zoo.plugin import ComponentSpec
from memo_zoo.slots.temporal import TemporalModule
from memo_zoo.testing import check_temporal
from memo_zoo_plugins.temporal.motion_module import (
    MemoryAttention,
    MotionModule,
    MotionModuleConfig,
    MotionModuleContext,
    build,
    sinusoidal_table,
)
from tests.golden import GoldenSet

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = ComponentSpec("motion_module", MotionModuleConfig, build,
                     "released MEMO motion module: GroupNorm, 2 memory linear attentions, GEGLU (T1-T6, §10)")
CHANNELS, GROUPS, HEADS = 8, 4, 2  # head width 4
H, W = 2, 1


def _module(seed: int = 0, dtype=torch.float64, **options) -> MotionModule:
    """A built module with every parameter drawn at random (proj_out off zero), in ``dtype``."""
    options = {"heads": HEADS, "norm_groups": GROUPS, **options}
    torch.manual_seed(seed)
    module = build(MotionModuleConfig(**options), channels=CHANNELS).to(dtype)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p + 0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype))
    return module


def _clip(seed: int, frames: int, batch: int = 2, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, CHANNELS, H, W, generator=g, dtype=torch.float64).to(dtype)


def _softmax(t: torch.Tensor, dim: int) -> torch.Tensor:
    e = torch.exp(t - t.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def _heads(attn: MemoryAttention, tokens: torch.Tensor, proj) -> torch.Tensor:
    """(N, F, inner) @ proj -> (N, F, heads, hd)."""
    n, f, _ = tokens.shape
    return (tokens @ proj.weight.T).reshape(n, f, attn.heads, attn.head_dim)


def _loop_memory_terms(attn: MemoryAttention, motion: torch.Tensor, decay: float):
    """KVc and Zc of Q4 frame by frame: key weight w_i and value weight w_i, w_i = decay**(n-1-i)."""
    k = _softmax(_heads(attn, motion, attn.to_k), 1)
    v = _heads(attn, motion, attn.to_v)
    n_tokens, n, heads, d = k.shape
    kv = torch.zeros(n_tokens, heads, d, d, dtype=motion.dtype)
    z = torch.zeros(n_tokens, heads, d, dtype=motion.dtype)
    for t in range(n_tokens):
        for h in range(heads):
            for i in range(n):
                w = decay ** (n - 1 - i)
                kv[t, h] += torch.outer(w * k[t, i, h], w * v[t, i, h])
                z[t, h] += w * k[t, i, h]
    return kv, z


def _loop_attention(attn: MemoryAttention, tokens: torch.Tensor, memory, decay: float) -> torch.Tensor:
    """Q4's read, per token, head and frame: out_i = q_i KVt / max(q_i . Zt, 1e-10), then to_out."""
    if attn.pos_encoder is not None:
        tokens = tokens + attn.pos_encoder.pe[:, : tokens.shape[1]]
    q = _softmax(_heads(attn, tokens, attn.to_q), -1) * attn.head_dim**-0.5
    k = _softmax(_heads(attn, tokens, attn.to_k), 1)
    v = _heads(attn, tokens, attn.to_v)
    n_tokens, f, heads, d = q.shape
    out = torch.zeros_like(q)
    for t in range(n_tokens):
        for h in range(heads):
            kvt = sum(torch.outer(k[t, j, h], v[t, j, h]) for j in range(f))
            zt = sum(k[t, j, h] for j in range(f))
            if memory is not None:
                kvt = kvt + decay * memory[0][t, h]
                zt = zt + decay * memory[1][t, h]
            for i in range(f):
                out[t, i, h] = (q[t, i, h] @ kvt) / torch.clamp(q[t, i, h] @ zt, min=1e-10)
    out = out.reshape(n_tokens, f, heads * d)
    return out @ attn.to_out[0].weight.T + attn.to_out[0].bias


def _tokens(module: MotionModule, x: torch.Tensor) -> torch.Tensor:
    """Per-frame GroupNorm and proj_in, written out: (B, F, C, H, W) -> (B*H*W, F, inner)."""
    tt = module.temporal_transformer
    b, f, c, h, w = x.shape
    normed = F.group_norm(x.reshape(b * f, c, h, w), tt.norm.num_groups, tt.norm.weight, tt.norm.bias, 1e-6)
    seq = normed.reshape(b, f, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, f, c)
    return seq @ tt.proj_in.weight.T + tt.proj_in.bias


def _layers(module: MotionModule):
    return [(a, n) for blk in module.temporal_transformer.transformer_blocks
            for a, n in zip(blk.attention_blocks, blk.norms)]


def _reference_forward(module: MotionModule, x: torch.Tensor, memory) -> torch.Tensor:
    """The whole module from the equations (Q5 wiring), memory = list of (KV, Z) or None."""
    tt = module.temporal_transformer
    decay = module.config.decay
    b, f, c, h, w = x.shape
    hidden = _tokens(module, x)
    layer = 0
    for blk in tt.transformer_blocks:
        for attn, norm in zip(blk.attention_blocks, blk.norms):
            normed = F.layer_norm(hidden, (hidden.shape[-1],), norm.weight, norm.bias, 1e-5)
            hidden = hidden + _loop_attention(attn, normed, None if memory is None else memory[layer], decay)
            layer += 1
        normed = F.layer_norm(hidden, (hidden.shape[-1],), blk.ff_norm.weight, blk.ff_norm.bias, 1e-5)
        proj = normed @ blk.ff.net[0].proj.weight.T + blk.ff.net[0].proj.bias
        value, gate = proj.chunk(2, dim=-1)
        hidden = hidden + (value * F.gelu(gate)) @ blk.ff.net[2].weight.T + blk.ff.net[2].bias
    out = hidden @ tt.proj_out.weight.T + tt.proj_out.bias
    return x + out.reshape(b, h, w, f, c).permute(0, 3, 4, 1, 2)


def _reference_memory(module: MotionModule, groups: list[torch.Tensor]):
    """The memory after streaming ``groups`` of motion frames, as one explicit sum over every past frame.

    A frame i of group g (n_g frames) weighs decay**(n_g-1-i) * decay**(frames in later groups) in Z
    and decay**(2(n_g-1-i)) * decay**(frames in later groups) in KV (Q4: the release weights the keys
    and the values of a group alike, the carry between groups once).
    """
    decay = module.config.decay
    memory = []
    for attn, norm in _layers(module):
        kv_total, z_total = 0, 0
        for g, motion in enumerate(groups):
            later = sum(m.shape[1] for m in groups[g + 1:])
            normed = F.layer_norm(_tokens(module, motion), (module.inner,), norm.weight, norm.bias, 1e-5)
            kv, z = _loop_memory_terms(attn, normed, decay)
            kv_total = kv_total + decay**later * kv
            z_total = z_total + decay**later * z
        memory.append((kv_total, z_total))
    return memory


def test_component_passes_the_temporal_contract():
    check_temporal(SPEC)


def test_module_follows_the_slot_protocol():
    assert isinstance(build(MotionModuleConfig(), channels=32), TemporalModule)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 5), decay=st.floats(0.0, 1.0), seed=st.integers(0, 50))
def test_memory_terms_match_per_frame_sums(n, decay, seed):
    module = _module(seed, decay=decay)
    attn = _layers(module)[0][0]
    motion = torch.randn(3, n, module.inner, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    kv, z = attn.memory_terms(motion)
    ref_kv, ref_z = _loop_memory_terms(attn, motion, decay)
    torch.testing.assert_close(kv, ref_kv)
    torch.testing.assert_close(z, ref_z)


@settings(max_examples=10, deadline=None)
@given(frames=st.integers(1, 4), decay=st.floats(0.0, 1.0), seed=st.integers(0, 50), pe=st.booleans(),
       with_memory=st.booleans())
def test_forward_matches_loop_reference(frames, decay, seed, pe, with_memory):
    module = _module(seed, decay=decay, pe=pe)
    x = _clip(seed, frames)
    ctx = module.new_context(2)
    if with_memory:
        ctx = module.update_context(ctx, _clip(seed + 1, 3))
    memory = None if ctx.memory is None else list(ctx.memory)
    torch.testing.assert_close(module(x, ctx), _reference_forward(module, x, memory))


@settings(max_examples=8, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3), decay=st.floats(0.05, 1.0),
       seed=st.integers(0, 50))
def test_streamed_memory_is_the_explicit_decayed_sum(sizes, decay, seed):
    module = _module(seed, decay=decay, transformer_blocks=2)
    groups = [_clip(seed + 10 * i, n) for i, n in enumerate(sizes)]
    ctx = module.new_context(2)
    for motion in groups:
        ctx = module.update_context(ctx, motion)
    assert ctx.frames_seen == sum(sizes)
    reference = _reference_memory(module, groups)
    assert len(ctx.memory) == 4  # 2 transformer blocks x 2 attention blocks
    for (kv, z), (ref_kv, ref_z) in zip(ctx.memory, reference):
        torch.testing.assert_close(kv, ref_kv)
        torch.testing.assert_close(z, ref_z)


def test_carry_between_updates_is_decay_to_the_number_of_new_frames():
    """KV <- decay**n KV + KVc with n the new frames, not a fixed count (Q4)."""
    module = _module(3, decay=0.7)
    first, second = _clip(1, 5), _clip(2, 3)
    one = module.update_context(module.new_context(2), first)
    only_second = module.update_context(module.new_context(2), second)
    both = module.update_context(one, second)
    for (kv, z), (kv1, z1), (kv2, z2) in zip(both.memory, one.memory, only_second.memory):
        torch.testing.assert_close(kv, 0.7**3 * kv1 + kv2)
        torch.testing.assert_close(z, 0.7**3 * z1 + z2)


def test_empty_context_reads_as_zero_memory():
    module = _module(4)
    x = _clip(5, 3)
    zeros = [(torch.zeros(2 * H * W, HEADS, 4, 4, dtype=torch.float64), torch.zeros(2 * H * W, HEADS, 4,
                                                                                      dtype=torch.float64))] * 2
    expected = _reference_forward(module, x, zeros)
    torch.testing.assert_close(module(x, None), expected)
    torch.testing.assert_close(module(x, module.new_context(2)), expected)
    assert torch.equal(module(x, module.update_context(module.new_context(2), _clip(6, 0))), module(x, None))


def test_fresh_module_is_the_identity():
    """A6: proj_out starts at zero, so x comes back bit for bit, with and without memory."""
    module = build(MotionModuleConfig(heads=HEADS, norm_groups=GROUPS), channels=CHANNELS)
    x = _clip(7, 4, dtype=torch.float32)
    ctx = module.update_context(module.new_context(2), _clip(8, 6, dtype=torch.float32))
    assert torch.equal(module(x), x)
    assert torch.equal(module(x, ctx), x)


def test_update_context_leaves_the_old_context_unchanged():
    module = _module(9)
    ctx = module.update_context(module.new_context(2), _clip(10, 3))
    saved = [(kv.clone(), z.clone()) for kv, z in ctx.memory]
    x = _clip(11, 4)
    before = module(x, ctx)
    newer = module.update_context(ctx, _clip(12, 2))
    assert newer is not ctx and newer.frames_seen == 5 and ctx.frames_seen == 3
    for (kv, z), (kv0, z0) in zip(ctx.memory, saved):
        assert torch.equal(kv, kv0) and torch.equal(z, z0)
    assert torch.equal(module(x, ctx), before)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.memory = None  # type: ignore[misc]


def test_context_for_flags_follows_the_release():
    module = _module(13)
    motion0, motion1 = _clip(14, 4), _clip(15, 4)
    clip0 = module.context_for_flags(None, motion0, is_new_audio=True, update_past_memory=True)
    rebuilt = module.context_for_flags(clip0, motion0, is_new_audio=True, update_past_memory=False)
    fresh = module.update_context(module.new_context(2), motion0)
    for (a, b), (c, d), (e, f) in zip(clip0.memory, rebuilt.memory, fresh.memory):
        assert torch.equal(a, c) and torch.equal(a, e) and torch.equal(b, d) and torch.equal(b, f)
    clip1 = module.context_for_flags(clip0, motion1, is_new_audio=False, update_past_memory=True)
    assert clip1.frames_seen == 8
    assert module.context_for_flags(clip1, motion1, is_new_audio=False, update_past_memory=False) is clip1
    assert module.context_for_flags(None, motion1, is_new_audio=False, update_past_memory=False).empty


@pytest.mark.parametrize("memory_gradients", [False, True])
def test_memory_gradients_option(memory_gradients):
    module = _module(16, memory_gradients=memory_gradients)
    motion = _clip(17, 3).requires_grad_()
    ctx = module.update_context(module.new_context(2), motion)
    assert all(t.requires_grad == memory_gradients for pair in ctx.memory for t in pair)


def test_memory_is_kept_in_float32_for_bfloat16_features():
    module = _module(18, dtype=torch.bfloat16)
    ctx = module.update_context(module.new_context(2), _clip(19, 3, dtype=torch.bfloat16))
    assert all(t.dtype == torch.float32 for pair in ctx.memory for t in pair)
    out = module(_clip(20, 4, dtype=torch.bfloat16), ctx)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_dim_div_narrows_the_inner_width():
    module = build(MotionModuleConfig(heads=2, norm_groups=4, dim_div=2), channels=CHANNELS)
    assert module.head_dim == 2 and module.inner == 4
    assert module.temporal_transformer.proj_in.weight.shape == (4, CHANNELS)
    assert module.temporal_transformer.transformer_blocks[0].ff.net[0].proj.weight.shape == (2 * 4 * 4, 4)


def test_position_table_is_the_sinusoid():
    table = sinusoidal_table(5, 6)[0].double()
    pos = torch.arange(5, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, 6, 2, dtype=torch.float64) / 6)
    torch.testing.assert_close(table[:, 0::2], torch.sin(pos * freq), atol=1e-6, rtol=0)
    torch.testing.assert_close(table[:, 1::2], torch.cos(pos * freq), atol=1e-6, rtol=0)
    assert "temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe" in _module().state_dict()


def test_default_config_builds_every_released_module_key_for_key():
    """Each of the release's motion modules: same keys and shapes, pe buffers included (manifest_full)."""
    manifest = json.loads(GoldenSet.named("memo_released").path("manifest_full.json").read_text())
    state = manifest["parts"]["diffusion_net"]["state_dict"]
    prefixes = sorted({k.split("temporal_transformer.")[0] for k in state if ".motion_modules." in k})
    assert prefixes
    for prefix in prefixes:
        released = {k[len(prefix):]: tuple(v[0]) for k, v in state.items() if k.startswith(prefix)}
        with torch.device("meta"):
            module = build(MotionModuleConfig(), channels=released["temporal_transformer.norm.weight"][0])
        ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        assert ours == released, prefix


def test_bad_options_and_inputs_are_refused_by_name():
    with pytest.raises(ValidationError, match="zero_initialize"):
        MotionModuleConfig(zero_initialize=False)
    with pytest.raises(ValueError, match="norm_groups"):
        build(MotionModuleConfig(norm_groups=3), channels=CHANNELS)
    with pytest.raises(ValueError, match="dim_div"):
        build(MotionModuleConfig(heads=8, norm_groups=4, dim_div=2), channels=CHANNELS)
    module = _module(21, pe_max_len=3)
    with pytest.raises(ValueError, match="pe_max_len"):
        module(_clip(22, 4))
    ctx = module.update_context(module.new_context(2), _clip(23, 2))
    with pytest.raises(ValueError, match="spatial"):
        module.update_context(ctx, torch.zeros(2, 2, CHANNELS, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch"):
        module(_clip(24, 2, batch=3), ctx)
