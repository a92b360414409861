"""Temporal modules initialised from AnimateDiff motion modules (spec A6), on the ``tiny`` preset.

Checkpoints are made here, never downloaded: a random diffusers ``MotionAdapter`` of the tiny
geometry (its folder layout), and a hand-written state dict in the original release's key layout
(as .safetensors and as .ckpt). Each test checks the mapped tensors element-wise, that nothing
else moved, and the report's lists; then the error cases and the ``task: train`` option.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from diffusers import MotionAdapter
from safetensors.torch import load_file, save_file

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.model.memo_net import MemoNet, build_memo_net
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.components import slot_factories
from memo_zoo.train.config import TrainConfig
from memo_zoo.train.loop import Trainer
from tests.small_recipes import NETWORK, SAMPLES, small_train_recipe

REGISTRY = load_registry(disabled=())
FACTORIES = slot_factories(REGISTRY)
TINY = {"preset": "tiny"}
# The tiny preset's sites and their widths: transformer sites of (32, 64) channels, 1 layer per block.
SITES = {"down_blocks.0.attentions.0": 32, "down_blocks.1.attentions.0": 64, "mid_block.attentions.0": 64,
         "up_blocks.0.attentions.0": 64, "up_blocks.0.attentions.1": 64,
         "up_blocks.1.attentions.0": 32, "up_blocks.1.attentions.1": 32}
LINEAR = {"kind": "linear_memory"}
SELF_GROUP = {"kind": "self_attention", "norm": "group", "norm_groups": 8}


pytestmark = pytest.mark.usefixtures("one_thread")


def make_net(temporal: dict, seed: int = 0, network: dict = TINY) -> MemoNet:
    torch.manual_seed(seed)
    return build_memo_net(network, FACTORIES("temporal", temporal), FACTORIES("audio_fusion", {"kind": "multimodal_attention"}))


def randomise(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Random values everywhere (norms included), so that an equality can only come from a copy."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in state.items()}


def adapter_folder(root: Path, seed: int = 1, groups: int = 8) -> Path:
    """A diffusers MotionAdapter of the tiny geometry, saved with save_pretrained."""
    torch.manual_seed(seed)
    adapter = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, motion_num_attention_heads=8,
                            motion_norm_num_groups=groups, motion_max_seq_length=32)
    adapter.load_state_dict(randomise(adapter.state_dict(), seed))
    adapter.save_pretrained(root)
    return root


def original_module(prefix: str, channels: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """One motion module in the original release's layout (VanillaTemporalModule with one
    TemporalTransformerBlock of two Temporal_Self attentions, position encoding on, max_len 32)."""
    c = channels
    t = f"{prefix}.temporal_transformer."
    b = t + "transformer_blocks.0."
    shapes = {t + "norm.weight": (c,), t + "norm.bias": (c,), t + "proj_in.weight": (c, c), t + "proj_in.bias": (c,),
              b + "ff.net.0.proj.weight": (8 * c, c), b + "ff.net.0.proj.bias": (8 * c,),
              b + "ff.net.2.weight": (c, 4 * c), b + "ff.net.2.bias": (c,),
              b + "ff_norm.weight": (c,), b + "ff_norm.bias": (c,),
              t + "proj_out.weight": (c, c), t + "proj_out.bias": (c,)}
    for a in (0, 1):
        att = f"{b}attention_blocks.{a}."
        shapes.update({att + "to_q.weight": (c, c), att + "to_k.weight": (c, c), att + "to_v.weight": (c, c),
                       att + "to_out.0.weight": (c, c), att + "to_out.0.bias": (c,),
                       att + "pos_encoder.pe": (1, 32, c),
                       f"{b}norms.{a}.weight": (c,), f"{b}norms.{a}.bias": (c,)})
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def original_state(seed: int = 2, sites: dict[str, int] = SITES, extra: bool = True,
                   mid: bool = True) -> dict[str, torch.Tensor]:
    """Original-layout motion modules for ``sites``; ``extra`` adds one at a block without a
    transformer (as SD1.5's down_blocks.3), which must be reported unused."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for site, channels in sites.items():
        if mid or not site.startswith("mid_block"):
            state.update(original_module(site.replace(".attentions.", ".motion_modules."), channels, g))
    if extra:
        state.update(original_module("down_blocks.2.motion_modules.0", 64, g))
    return state


def temporal_params(net: MemoNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if ".temporal." in k}


def expected_map(net: MemoNet, norm_source: str, layout: str, output: bool = True) -> dict[str, str]:
    """MemoNet name -> checkpoint key, written out independently of the loader's tables."""
    if layout == "diffusers":
        block, attn, norm1, group = "transformer_blocks.0.", "attn1.", "norm1", ""
    else:
        block, attn, norm1, group = "temporal_transformer.transformer_blocks.0.", "attention_blocks.0.", "norms.0", \
            "temporal_transformer."
    mapping = {}
    for site in SITES:
        ours = f"diffusion_net.unet.{site}.temporal."
        theirs = site.replace(".attentions.", ".motion_modules.") + "."
        for p in "qkv":
            mapping[f"{ours}to_{p}.weight"] = f"{theirs}{block}{attn}to_{p}.weight"
        if output:
            for p in ("weight", "bias"):
                mapping[f"{ours}to_out.{p}"] = f"{theirs}{block}{attn}to_out.0.{p}"
        for p in ("weight", "bias"):
            mapping[f"{ours}norm.inner.{p}"] = (f"{theirs}{group}norm.{p}" if norm_source == "group"
                                                else f"{theirs}{block}{norm1}.{p}")
    return mapping


def check_load(net: MemoNet, before: dict[str, torch.Tensor], report, state: dict[str, torch.Tensor],
               expected: dict[str, str]) -> None:
    after = net.state_dict()
    assert report.loaded == expected
    for ours, theirs in expected.items():
        assert torch.equal(after[ours], state[theirs]), ours
    for name, tensor in before.items():
        if name not in expected:
            assert torch.equal(after[name], tensor), name
    assert set(report.unused) == set(state) - set(expected.values())
    temporal = {name for name in after if ".temporal." in name}
    assert set(report.kept) == temporal - set(expected)


# ---- the two layouts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("temporal, norm", [(LINEAR, "layer"), (SELF_GROUP, "group")])
def test_diffusers_motion_adapter_folder_loads_into_each_temporal_kind(tmp_path, temporal, norm):
    folder = adapter_folder(tmp_path / "adapter")
    state = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    net = make_net(temporal)
    everything = {k: v.clone() for k, v in net.state_dict().items()}
    report = net.init_from_animatediff(folder)
    check_load(net, everything, report, state, expected_map(net, norm, "diffusers"))
    # Heads (8) and GroupNorm groups (8) agree with the adapter's config.json: nothing to note.
    assert report.kept == () and report.notes == ()
    assert report.source == folder / "diffusion_pytorch_model.safetensors"
    # What has no counterpart is reported unused: proj_in/out, attn2, the feed-forward, positions.
    for suffix in ("proj_in.weight", "proj_out.bias", "attn2.to_q.weight", "ff.net.2.weight", "pos_embed.pe",
                   "norm3.weight", "motion_modules.0.norm.weight" if norm == "layer" else "norm1.weight"):
        assert any(k.endswith(suffix) for k in report.unused), suffix


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
@pytest.mark.parametrize("temporal, norm", [(LINEAR, "layer"), (SELF_GROUP, "group")])
def test_original_layout_loads_into_each_temporal_kind(tmp_path, suffix, temporal, norm):
    state = original_state()
    path = tmp_path / f"mm_sd_v15_v2{suffix}"
    if suffix == ".ckpt":
        # As AnimateDiff's training script saves them: wrapped with the step count.
        torch.save({"state_dict": state, "global_step": 7}, path)
    else:
        save_file(state, str(path))
    net = make_net(temporal, seed=3)
    before = temporal_params(net)
    others = {k: v.clone() for k, v in net.state_dict().items() if ".temporal." not in k}
    report = net.init_from_animatediff(path)
    check_load(net, before, report, state, expected_map(net, norm, "original"))
    assert all(torch.equal(net.state_dict()[k], v) for k, v in others.items())
    assert report.source == path
    assert all(k in report.unused for k in state if k.startswith("down_blocks.2."))
    assert all(k in report.unused for k in state if k.endswith("pos_encoder.pe"))
    if norm == "group":
        # The original layout does not record its groups; AnimateDiff's are 32, this module has 8.
        assert report.notes == (f"GroupNorm of 8 groups here, 32 in AnimateDiff: {', '.join(SITES)}",)
    else:
        assert report.notes == ()
    assert report.as_dict()["loaded"] == report.loaded and str(path) in report.summary()


def test_output_zero_keeps_the_identity_at_init(tmp_path):
    """output='zero' (A6 identity) leaves to_out at zero: the temporal module returns its input."""
    state = original_state()
    save_file(state, str(tmp_path / "mm.safetensors"))
    net = make_net(LINEAR)
    before = temporal_params(net)
    report = net.init_from_animatediff(tmp_path / "mm.safetensors", output="zero")
    check_load(net, before, report, state, expected_map(net, "layer", "original", output=False))
    assert all(".to_out." in k for k in report.kept) and len(report.kept) == 2 * len(SITES)
    x = torch.randn(1, 3, 32, 4, 4)
    module = net.diffusion_net.blocks[0].temporal
    with torch.no_grad():
        assert torch.equal(module(x), x)
        copied = make_net(LINEAR)
        copied.init_from_animatediff(tmp_path / "mm.safetensors")
        assert not torch.equal(copied.diffusion_net.blocks[0].temporal(x), x)


def test_a_checkpoint_without_mid_block_module_leaves_that_site_at_init(tmp_path):
    """AnimateDiff v1 has no mid-block motion module."""
    state = original_state(mid=False, extra=False)
    save_file(state, str(tmp_path / "mm_v1.safetensors"))
    net = make_net(LINEAR)
    before = temporal_params(net)
    report = net.init_from_animatediff(tmp_path / "mm_v1.safetensors")
    mid = "diffusion_net.unet.mid_block.attentions.0.temporal."
    expected = {k: v for k, v in expected_map(net, "layer", "original").items() if not k.startswith(mid)}
    check_load(net, before, report, state, expected)
    assert report.kept and all(k.startswith(mid) for k in report.kept)
    assert report.notes == ("no mid-block motion module in the checkpoint (as AnimateDiff v1): kept at init: "
                            "mid_block.attentions.0",)


def test_head_count_differences_are_noted(tmp_path):
    save_file(original_state(), str(tmp_path / "mm.safetensors"))
    report = make_net({"kind": "linear_memory", "heads": 4}).init_from_animatediff(tmp_path / "mm.safetensors")
    assert report.notes == (f"q/k/v split into 4 heads here, 8 in AnimateDiff: {', '.join(SITES)}",)


# ---- errors ------------------------------------------------------------------------------------------

def test_a_missing_file_names_the_path(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"(?s)not found at .*absent\.ckpt.*does not download"):
        make_net(LINEAR).init_from_animatediff(tmp_path / "absent.ckpt")
    (tmp_path / "empty_adapter").mkdir()
    with pytest.raises(MissingWeightsError, match="lacks diffusion_pytorch_model.safetensors"):
        make_net(LINEAR).init_from_animatediff(tmp_path / "empty_adapter")


def test_wrong_shapes_name_the_key_both_shapes_and_the_file_and_load_nothing(tmp_path):
    sites = dict(SITES, **{"down_blocks.0.attentions.0": 48})
    path = tmp_path / "wide.safetensors"
    save_file(original_state(sites=sites), str(path))
    net = make_net(LINEAR)
    before = temporal_params(net)
    key = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight"
    ours = "diffusion_net.unet.down_blocks.0.attentions.0.temporal.to_q.weight"
    message = f"{path} does not fit .*{key}: (48, 48) in the checkpoint, (32, 32) at {ours}"
    with pytest.raises(MemoZooError, match="(?s)" + ".*".join(map(re.escape, message.split(".*")))):
        net.init_from_animatediff(path)
    after = temporal_params(net)
    assert all(torch.equal(after[k], v) for k, v in before.items())  # checked before anything is copied


def test_an_sd15_adapter_is_refused_by_a_tiny_network(tmp_path):
    sd15 = {site: 320 if c == 32 else 640 for site, c in SITES.items()}  # the tiny sites at SD1.5's widths
    save_file(original_state(sites=sd15), str(tmp_path / "sd15.safetensors"))
    with pytest.raises(MemoZooError,
                       match=r"(?s)shape mismatch \(49\).*\(320, 320\) in the checkpoint, \(32, 32\) at"):
        make_net(LINEAR).init_from_animatediff(tmp_path / "sd15.safetensors")


def test_a_block_structure_mismatch_names_the_sites(tmp_path):
    sites = {k: v for k, v in SITES.items() if not k.startswith("up_blocks.1.")}
    save_file(original_state(sites=sites), str(tmp_path / "short.safetensors"))
    message = ("does not match the network's blocks (preset 'tiny', block_out_channels (32, 64)): no motion module "
               "for the site(s) up_blocks.1.attentions.0, up_blocks.1.attentions.1; it has "
               "down_blocks.0.motion_modules.0, down_blocks.1.motion_modules.0, down_blocks.2.motion_modules.0")
    with pytest.raises(MemoZooError, match=re.escape(message)):
        make_net(LINEAR).init_from_animatediff(tmp_path / "short.safetensors")


def test_unusable_files_and_components_are_refused(tmp_path):
    save_file({"conv_in.weight": torch.zeros(2, 2)}, str(tmp_path / "unet.safetensors"))
    with pytest.raises(MemoZooError, match="holds no AnimateDiff motion-module keys.*conv_in.weight"):
        make_net(LINEAR).init_from_animatediff(tmp_path / "unet.safetensors")
    (tmp_path / "mm.onnx").write_bytes(b"x")
    with pytest.raises(MemoZooError, match="unknown .* format '.onnx'"):
        make_net(LINEAR).init_from_animatediff(tmp_path / "mm.onnx")
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(MemoZooError, match="broken.ckpt could not be read"):
        make_net(LINEAR).init_from_animatediff(tmp_path / "broken.ckpt")
    save_file(original_state(), str(tmp_path / "mm.safetensors"))
    with pytest.raises(MemoZooError, match="temporal component 'none' has no parameter"):
        make_net({"kind": "none"}).init_from_animatediff(tmp_path / "mm.safetensors")


# ---- task: train ----------------------------------------------------------------------------------

class _Run:
    def __init__(self) -> None:
        self.logged: dict[str, object] = {}

    def log_dict(self, data: object, artifact_file: str) -> None:
        self.logged[artifact_file] = data


def test_the_train_option_initialises_the_temporal_modules_before_init_weights(tmp_path):
    recipe = small_train_recipe(tmp_path, REGISTRY, name="animatediff-init")
    small = {site: c // 2 for site, c in SITES.items()}
    state = original_state(sites=small, extra=False)
    save_file(state, str(tmp_path / "mm.safetensors"))
    samples = SAMPLES
    key = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_out.0.weight"
    ours = "diffusion_net.unet.down_blocks.0.attentions.0.temporal.to_out.weight"

    run = _Run()
    config = TrainConfig(animatediff=tmp_path / "mm.safetensors", samples=samples)
    net = Trainer(config, recipe, REGISTRY, run, tmp_path)._build_parts()[0]
    assert torch.equal(net.state_dict()[ours], state[key])
    logged = run.logged["animatediff_init.json"]
    assert logged["loaded"][ours] == key and logged["source"] == str(tmp_path / "mm.safetensors")

    zero = TrainConfig(animatediff=tmp_path / "mm.safetensors", animatediff_output="zero", samples=samples)
    net = Trainer(zero, recipe, REGISTRY, None, tmp_path)._build_parts()[0]
    assert not net.state_dict()[ours].any()

    # init_weights is applied after it and wins.
    torch.manual_seed(5)
    saved = build_memo_net(NETWORK, FACTORIES("temporal", {"kind": "linear_memory", "heads": 2}),
                           FACTORIES("audio_fusion", {"kind": "multimodal_attention", "heads": 2})
                           ).save_pretrained(tmp_path / "saved")
    both = TrainConfig(animatediff=tmp_path / "mm.safetensors", init_weights=saved, samples=samples)
    net = Trainer(both, recipe, REGISTRY, None, tmp_path)._build_parts()[0]
    assert torch.equal(net.state_dict()[ours], load_file(str(saved / "memo_net.safetensors"))[ours])
