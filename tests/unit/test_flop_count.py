"""benchmarks/cost.py's counting (issue 19): attention FLOPs are counted, module attribution adds
up, the kind table classifies both families' module names, and the level split the released
network is counted with has the FLOPs of its batched call."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]


def _cost():
    spec = importlib.util.spec_from_file_location("benchmark_cost", ROOT / "benchmarks" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


cost = _cost()


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_sdpa_flops_match_a_hand_count(device):
    b, h, lq, lk, d = 2, 3, 5, 7, 4
    q = torch.randn(b, h, lq, d, device=device)
    k, v = torch.randn(b, h, lk, d, device=device), torch.randn(b, h, lk, d, device=device)
    counted = cost.count(lambda: F.scaled_dot_product_attention(q, k, v))
    # Q K^T: b h lq lk d multiply-adds; weights @ V: the same again; 2 FLOPs each
    assert counted.total == 2 * (2 * b * h * lq * lk * d)


class _Attention(nn.Module):
    """q/k/v/out Linears as children, the attention matmuls in the module itself (as in diffusers)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q, self.to_k, self.to_v = (nn.Linear(width, width, bias=False) for _ in range(3))
        self.to_out = nn.ModuleList([nn.Linear(width, width, bias=False)])

    def forward(self, x):
        b, n, c = x.shape
        split = lambda t: t.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x)))
        return self.to_out[0](out.transpose(1, 2).reshape(b, n, c))


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn1 = _Attention(8, 2)
        self.ff = nn.Linear(8, 16, bias=False)

    def forward(self, x):
        return self.ff(self.attn1(x))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_own_flops_put_attention_matmuls_in_the_attention_module(device):
    b, n, c = 2, 6, 8
    with torch.device(device):
        block, x = _Block(), torch.randn(b, n, c)
    counted = cost.count(lambda: block(x))
    linear = 2 * b * n * c * c
    attention = 2 * (2 * b * n * n * c)  # heads x head width = c
    assert counted.own["_Block.attn1"] == attention
    assert counted.own["_Block.attn1.to_q"] == linear
    assert counted.own["_Block.attn1.to_out.0"] == linear  # nearest counted ancestor: attn1 (ModuleList skipped)
    assert counted.own["_Block.ff"] == 2 * b * n * c * 16
    assert counted.total == 4 * linear + attention + 2 * b * n * c * 16 == sum(counted.own.values())


def test_own_flops_subtracts_the_nearest_counted_ancestor_and_refuses_non_nesting():
    op = "aten.mm"
    counts = {"Global": {op: 100}, "Net": {op: 100}, "Net.a": {op: 30}, "Net.b.0": {op: 20}, "Net.b.0.x": {op: 5}}
    assert cost.own_flops(counts) == {"Global": 0, "Net": 50, "Net.a": 30, "Net.b.0": 15, "Net.b.0.x": 5}
    with pytest.raises(RuntimeError, match="do not nest"):
        cost.own_flops({"Global": {op: 10}, "Net": {op: 10}, "Net.a": {op: 20}})


@pytest.mark.parametrize("name, kind", [
    # the zoo's MemoNet (diffusion_net.unet.<level>.attentions.N.{spatial, audio, temporal})
    ("MemoNet.diffusion_net.unet.up_blocks.1.attentions.0.spatial.transformer_blocks.0.attn1",
     "spatial self-attention"),
    ("MemoNet.diffusion_net.unet.up_blocks.1.attentions.0.spatial.transformer_blocks.0.attn1.to_k",
     "spatial self-attention"),
    ("MemoNet.diffusion_net.unet.down_blocks.0.attentions.1.spatial.transformer_blocks.0.attn2.to_q",
     "cross-attention"),
    ("MemoNet.diffusion_net.unet.down_blocks.0.attentions.1.spatial.transformer_blocks.0.ff.net.0.proj",
     "spatial transformer, rest"),
    ("MemoNet.diffusion_net.unet.mid_block.attentions.0.spatial.proj_in", "spatial transformer, rest"),
    ("MemoNet.diffusion_net.unet.up_blocks.2.attentions.0.audio.video_qkv", "audio"),
    ("MemoNet.diffusion_net.unet.up_blocks.2.attentions.0.temporal.to_q", "temporal"),
    ("MemoNet.diffusion_net.unet.up_blocks.2.resnets.1.conv1", "resnets"),
    ("MemoNet.diffusion_net.unet.up_blocks.0.upsamplers.0.conv", "resnets"),
    ("MemoNet.diffusion_net.unet.conv_in", "resnets"),
    ("MemoNet.diffusion_net.unet.time_embedding.linear_1", "other"),
    # the release's 3-D net (attentions.N spatial, audio_modules.N, motion_modules.N)
    ("ReleasedMemoNet.diffusion_net.up_blocks.1.attentions.0.transformer_blocks.0.attn1", "spatial self-attention"),
    ("ReleasedMemoNet.diffusion_net.up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0",
     "cross-attention"),
    ("ReleasedMemoNet.diffusion_net.down_blocks.0.audio_modules.1.transformer_blocks.0.attn1.to_q", "audio"),
    ("ReleasedMemoNet.diffusion_net.down_blocks.0.audio_modules.1.transformer_blocks.0.attn2", "audio"),
    ("ReleasedMemoNet.diffusion_net.up_blocks.3.motion_modules.2.temporal_transformer.transformer_blocks.0."
     "attention_blocks.1.to_v", "temporal"),
    ("ReleasedMemoNet.diffusion_net.down_blocks.3.resnets.0.conv_shortcut", "resnets"),
    ("ReleasedMemoNet.diffusion_net.conv_out", "resnets"),
    ("Global", "other"),
])
def test_kind_table_classifies_both_families(name, kind):
    assert cost.classify(name) == kind


@pytest.fixture(scope="module")
def registry():
    from memo_zoo.plugin.manager import load_registry

    return load_registry(disabled=())


@pytest.mark.parametrize("family", cost.FAMILIES, ids=lambda f: f.name)
def test_step_kinds_add_up_and_every_kind_is_seen(family, registry):
    counts = cost.family_counts(family, cost.SMOKE, registry)  # raises if the kinds miss any FLOP
    kinds = counts["diffusion_net_per_step_by_kind"]
    assert sum(kinds.values()) == counts["diffusion_net_per_step"]
    for kind in ("temporal", "audio", "cross-attention", "spatial self-attention", "spatial transformer, rest",
                 "resnets", cost.REFERENCE_KIND):
        assert kinds[kind] > 0, kind
    assert counts["reference_net_per_clip"] > 0


def test_released_level_split_costs_what_its_batched_call_costs(registry):
    """On real (CPU) tensors the released network can select its unconditional rows itself: its
    batched guided step has exactly the FLOPs of the per-level split the meta count uses."""
    family = next(f for f in cost.FAMILIES if f.name == cost.RELEASED)
    setting = cost.SMOKE
    torch.manual_seed(0)
    net = cost.build_family(family, setting, "cpu", registry)
    inputs = cost.make_inputs(net, setting, "cpu")
    with torch.no_grad():
        tokens = cost.image_tokens(net, inputs, setting.levels)
        reference, state = cost.reference_pass(net, inputs, tokens)
        contexts = cost.level_contexts(net, inputs, tokens)
    batched = cost.count(lambda: cost.guided_step(net, inputs, tokens, reference, state))
    split = cost.count(lambda: cost.split_step(net, inputs, tokens, contexts))
    assert batched.total == split.total > 0
