"""The MEMO network (spec §1 A2-A6, T2/T5/T6, E1, §10) on the ``tiny`` preset.

Shapes for every registered temporal x audio_fusion kind; A6 (zero-initialised new modules and no
reference = the plain diffusers UNet, bit for bit); A3 reference attention against an explicit
float64 concat-attention; the temporal memory flow (T2, T6); checkpoints, SD1.5-layout loading
and gradient checkpointing. Timings live in benchmarks/memo_net_step.py, not here.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from diffusers import UNet2DConditionModel

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.model.memo_net import CONFIG_FILE, MemoNet, build_memo_net
from memo_zoo.recipe.network import NetworkConfig
from memo_zoo.model.reference_attention import ReferenceRead
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.components import slot_factories

REGISTRY = load_registry(disabled=())
FACTORIES = slot_factories(REGISTRY)
TINY = NetworkConfig(preset="tiny")
C, S = TINY.latent_channels, TINY.sample_size
T, A, K, E = TINY.audio_tokens, TINY.audio_dim, TINY.image_tokens, TINY.image_embed_dim


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These nets are small: one intra-op thread is faster than two fighting over shared cores
    (measured 0.05 s vs 0.1-0.5 s per tiny clip), and it keeps the run's timing steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def kinds(slot: str) -> list[str]:
    return REGISTRY.kinds(slot)


def make_net(temporal: str = "linear_memory", audio: str = "multimodal_attention", seed: int = 0,
             network: NetworkConfig = TINY) -> MemoNet:
    torch.manual_seed(seed)
    return build_memo_net(network, FACTORIES("temporal", {"kind": temporal}), FACTORIES("audio_fusion", {"kind": audio}))


def perturb(modules, seed: int = 1, scale: float = 0.1) -> None:
    """Move parameters (zero-initialised output projections included) off their init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for p in module.parameters():
                p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def new_modules(net: MemoNet):
    """The modules MEMO adds to the UNet: every site's audio and temporal module."""
    return [m for block in net.diffusion_net.blocks for m in (block.audio, block.temporal)]


def inputs(seed: int, batch: int = 1, frames: int = 2, motion: int = 3):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    return {
        "latents": r(batch, frames, C, S, S), "timestep": torch.rand(batch, generator=g),
        "embedding": r(batch, E), "reference": r(batch, C, S, S), "motion": r(batch, motion, C, S, S),
        "audio": r(batch, frames, T, A), "emotion": torch.randint(0, 8, (batch, frames), generator=g),
    }


def run(net: MemoNet, x: dict, use_reference: bool = True, state=None, with_state: bool = True):
    tokens = net.project_image(x["embedding"])
    reference = net.encode_reference(x["reference"], tokens) if use_reference else None
    if with_state and state is None:
        state = net.motion_state(x["motion"], tokens)
    return net(x["latents"], x["timestep"], tokens, x["audio"], x["emotion"], reference, state)


# ---- NetworkConfig ------------------------------------------------------------------------------

def test_sd15_preset_is_sd15_unet_geometry():
    """A2/A3: the sd15 preset builds SD1.5's UNet exactly (859,520,964 parameters)."""
    cfg = NetworkConfig(preset="sd15")
    assert cfg.block_out_channels == (320, 640, 1280, 1280) and cfg.layers_per_block == 2
    assert cfg.attention_head_dim == 8 and cfg.cross_attention_dim == 768 and cfg.latent_channels == 4
    assert cfg.down_block_types == ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    assert cfg.up_block_types == ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
    with torch.device("meta"):
        unet = UNet2DConditionModel(**cfg.unet_kwargs())
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964


def test_network_config_fills_from_preset_rejects_typos_and_bad_geometry():
    cfg = NetworkConfig(preset="tiny", latent_channels=3)
    assert cfg.latent_channels == 3 and cfg.block_out_channels == (32, 64)
    assert NetworkConfig.model_validate(json.loads(cfg.model_dump_json())) == cfg
    with pytest.raises(ValueError, match="extra"):
        NetworkConfig(preset="tiny", block_channels=(8,))
    with pytest.raises(ValueError, match="norm_num_groups"):
        NetworkConfig(preset="tiny", block_out_channels=(36, 64))


# ---- shapes, every registered kind --------------------------------------------------------------

@pytest.mark.parametrize("audio", kinds("audio_fusion"))
@pytest.mark.parametrize("temporal", kinds("temporal"))
def test_tiny_shapes_for_every_temporal_and_audio_fusion_kind(temporal, audio):
    """A2-A5 shapes: reference states per attn1 layer, motion features per site, velocity out."""
    net = make_net(temporal, audio)
    perturb(new_modules(net))
    x = inputs(0, batch=2, frames=2)
    tokens = net.project_image(x["embedding"])
    assert tokens.shape == (2, K, TINY.cross_attention_dim)
    ref = net.encode_reference(x["reference"], tokens)
    assert sorted(ref.hidden_states) == sorted(net.diffusion_net.layers) == sorted(net.reference_net.layers)
    for site, block in zip(net.reference_net.sites, ref.blocks):
        assert block.shape[:2] == (2, site.channels)
        layer = f"{site.name}.transformer_blocks.0.attn1"
        assert ref.hidden_states[layer].shape == (2, block.shape[2] * block.shape[3], site.channels)
    state = net.motion_state(x["motion"], tokens)
    assert len(state.contexts) == len(net.diffusion_net.sites) == 7
    for emotion in (x["emotion"], x["emotion"][:, 0], None):
        v = net(x["latents"], x["timestep"], tokens, x["audio"], emotion, ref, state)
        assert v.shape == x["latents"].shape and torch.isfinite(v).all()


# ---- A6: identity at init -------------------------------------------------------------------------

@pytest.mark.parametrize("audio", kinds("audio_fusion"))
@pytest.mark.parametrize("temporal", kinds("temporal"))
def test_A6_zero_init_modules_without_reference_equal_the_plain_unet(temporal, audio):
    """A6 + §10: fresh audio/temporal modules (even with motion memory and audio tokens) and no
    reference give exactly the output of a plain UNet2DConditionModel with the same weights."""
    net = make_net(temporal, audio)
    x = inputs(1, batch=2, frames=2)
    with torch.no_grad():
        tokens = net.project_image(x["embedding"])
        v = run(net, x, use_reference=False)
        plain = UNet2DConditionModel(**TINY.unet_kwargs())
        plain.load_state_dict(net.diffusion_net.spatial_state_dict())
        expected = plain(x["latents"].flatten(0, 1), (x["timestep"] * TINY.timestep_scale).repeat_interleave(2),
                         tokens.repeat_interleave(2, dim=0)).sample
    assert torch.equal(v.flatten(0, 1), expected)


# ---- A3: reference attention ----------------------------------------------------------------------

def test_A3_reference_changes_the_output_and_none_disables_it():
    net = make_net()
    x = inputs(2)
    with torch.no_grad():
        tokens = net.project_image(x["embedding"])
        state = net.motion_state(x["motion"], tokens)
        ref1 = net.encode_reference(x["reference"], tokens)
        ref2 = net.encode_reference(inputs(3)["reference"], tokens)
        out = {name: net(x["latents"], x["timestep"], tokens, x["audio"], x["emotion"], ref, state)
               for name, ref in (("ref1", ref1), ("ref2", ref2), ("none", None))}
    assert not torch.allclose(out["ref1"], out["ref2"], atol=1e-4)
    assert not torch.allclose(out["ref1"], out["none"], atol=1e-4)


def explicit_concat_attention(attn, hidden, reference, frames):
    """Slow spec A3: per frame and head, softmax(q [k_own; k_ref]^T / sqrt(d)) [v_own; v_ref]."""
    heads = attn.heads
    wq, wk, wv = attn.to_q.weight, attn.to_k.weight, attn.to_v.weight
    wo, bo = attn.to_out[0].weight, attn.to_out[0].bias
    d = wq.shape[0] // heads
    out = torch.empty(hidden.shape[0], hidden.shape[1], wo.shape[0], dtype=hidden.dtype)
    for n in range(hidden.shape[0]):
        own, ref = hidden[n], reference[n // frames]
        context = torch.cat([own, ref], dim=0)
        q, k, v = own @ wq.T, context @ wk.T, context @ wv.T
        per_head = []
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            weights = torch.softmax(q[:, sl] @ k[:, sl].T / math.sqrt(d), dim=-1)
            per_head.append(weights @ v[:, sl])
        out[n] = torch.cat(per_head, dim=-1) @ wo.T + bo
    return out


def test_A3_read_processor_equals_explicit_concat_attention_float64():
    net = make_net()
    block = net.diffusion_net.blocks[0].spatial.transformer_blocks[0]
    attn = copy.deepcopy(block.attn1).double()
    layer = net.diffusion_net.layers[0]
    g = torch.Generator().manual_seed(4)
    batch, frames, length, ref_length, width = 2, 3, 5, 7, attn.to_q.in_features
    hidden = torch.randn(batch * frames, length, width, generator=g, dtype=torch.float64)
    reference = torch.randn(batch, ref_length, width, generator=g, dtype=torch.float64)
    got = attn(hidden, memo_reference=ReferenceRead({layer: reference}, frames))
    torch.testing.assert_close(got, explicit_concat_attention(attn, hidden, reference, frames), rtol=1e-12, atol=1e-12)
    # A per-video mask of False is plain self-attention for that video only (batched CFG, §10).
    masked = attn(hidden, memo_reference=ReferenceRead({layer: reference}, frames, torch.tensor([True, False])))
    plain = attn(hidden, memo_reference=ReferenceRead(None, frames))
    torch.testing.assert_close(masked[:frames], got[:frames], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(masked[frames:], plain[frames:], rtol=1e-12, atol=1e-12)


def test_reference_mask_batches_conditional_and_unconditional_branches():
    """§10 / I2: one pass over [cond ; uncond] equals the two passes made separately."""
    net = make_net()
    perturb(new_modules(net))
    x = inputs(5)
    with torch.no_grad():
        tokens = net.project_image(x["embedding"])
        ref = net.encode_reference(x["reference"], tokens)
        state = net.motion_state(x["motion"], tokens)
        cond = net(x["latents"], x["timestep"], tokens, x["audio"], x["emotion"], ref, state)
        uncond = net(x["latents"], x["timestep"], tokens, x["audio"], x["emotion"], None, state)
        two = lambda t: torch.cat([t, t])  # noqa: E731
        both = net(two(x["latents"]), two(x["timestep"]), two(tokens), two(x["audio"]), two(x["emotion"]),
                   {k: two(v) for k, v in ref.hidden_states.items()},
                   net.motion_state(two(x["motion"]), two(tokens)), reference_mask=torch.tensor([True, False]))
    torch.testing.assert_close(both, torch.cat([cond, uncond]), rtol=1e-4, atol=1e-5)


# ---- T2 / T6: temporal memory -------------------------------------------------------------------

@pytest.mark.parametrize("temporal", ["linear_memory", "none"])
def test_T2_motion_frames_change_the_output_of_a_memory_net_only(temporal):
    net = make_net(temporal)
    perturb(new_modules(net))
    x = inputs(6)
    with torch.no_grad():
        empty = run(net, x, with_state=False)
        remembered = run(net, x)
    if temporal == "none":
        assert torch.equal(empty, remembered)
    else:
        assert not torch.allclose(empty, remembered, atol=1e-4)


def test_T6_one_state_serves_every_step_and_survives_updates():
    """T6: the state built once per clip gives identical outputs at every call and is not mutated
    by a later update (old contexts stay valid)."""
    net = make_net()
    perturb(new_modules(net))
    x = inputs(7)
    with torch.no_grad():
        tokens = net.project_image(x["embedding"])
        ref = net.encode_reference(x["reference"], tokens)
        state = net.motion_state(x["motion"], tokens)
        step = lambda s: net(x["latents"], x["timestep"], tokens, x["audio"], x["emotion"], ref, s)  # noqa: E731
        first, second = step(state), step(state)
        newer = net.motion_state(inputs(8)["motion"], tokens, state)
        third = step(state)
        assert not torch.allclose(step(newer), first, atol=1e-4)
    assert torch.equal(first, second) and torch.equal(first, third)


# ---- checkpoints ----------------------------------------------------------------------------------

def test_save_and_reload_is_bit_identical(tmp_path):
    net = make_net("self_attention", "cross_attention", seed=2)
    perturb([net])
    net.save_pretrained(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / CONFIG_FILE).read_text())
    assert saved["temporal"]["kind"] == "self_attention" and saved["audio_fusion"]["kind"] == "cross_attention"
    loaded = MemoNet.from_pretrained(tmp_path / "ckpt", FACTORIES)
    assert loaded.configs() == net.configs()
    a, b = net.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = inputs(9)
    with torch.no_grad():
        assert torch.equal(run(net, x), run(loaded, x))


def test_a_checkpoint_of_another_architecture_is_refused_by_name(tmp_path):
    make_net("linear_memory").save_pretrained(tmp_path / "ckpt")
    with pytest.raises(MemoZooError, match=r"(?s)unexpected \(\d+\).*\.temporal\.to_q\.weight"):
        MemoNet.from_pretrained(tmp_path / "ckpt", FACTORIES, temporal={"kind": "none"})
    narrow = {"preset": "tiny", "block_out_channels": [16, 32]}
    with pytest.raises(MemoZooError, match=r"(?s)shape mismatch.*conv_in\.weight: \(32, 4, 3, 3\) in the checkpoint, "
                                           r"\(16, 4, 3, 3\) here"):
        MemoNet.from_pretrained(tmp_path / "ckpt", FACTORIES, network=narrow)
    with pytest.raises(MissingWeightsError):
        MemoNet.from_pretrained(tmp_path / "nowhere", FACTORIES)


# ---- A6: SD1.5 weights from a local diffusers folder ----------------------------------------------

def test_A6_sd15_layout_loads_into_both_nets(tmp_path):
    torch.manual_seed(11)
    sd = UNet2DConditionModel(**TINY.unet_kwargs())
    sd.save_pretrained(tmp_path / "sd15" / "unet")  # the pipeline layout: <root>/unet/{config.json,weights}
    net = make_net(seed=12)
    net.init_from_sd15(tmp_path / "sd15")
    expected = sd.state_dict()
    got = net.diffusion_net.spatial_state_dict()
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    ref = net.reference_net.spatial_state_dict()
    skipped = {k for k in expected if k.startswith(("conv_norm_out.", "conv_out."))}
    assert ref.keys() == expected.keys() - skipped and all(torch.equal(ref[k], expected[k]) for k in ref)
    # With the new modules at zero and no reference, the Diffusion Net is that UNet (A6).
    x = inputs(13)
    with torch.no_grad():
        tokens = net.project_image(x["embedding"])
        v = net(x["latents"], x["timestep"], tokens)
        plain = sd(x["latents"].flatten(0, 1), (x["timestep"] * TINY.timestep_scale).repeat_interleave(2),
                   tokens.repeat_interleave(2, dim=0)).sample
    assert torch.equal(v.flatten(0, 1), plain)
    net.init_from_sd15(tmp_path / "sd15" / "unet")  # the unet folder itself works too


def test_A6_sd15_loading_refuses_another_geometry_and_missing_folders(tmp_path):
    other = dict(TINY.unet_kwargs(), cross_attention_dim=16)
    UNet2DConditionModel(**other).save_pretrained(tmp_path / "unet")
    with pytest.raises(MemoZooError, match="cross_attention_dim: network config has 32, the UNet has 16"):
        make_net().init_from_sd15(tmp_path)
    with pytest.raises(MissingWeightsError, match="does not download"):
        make_net().init_from_sd15(tmp_path / "absent")


# ---- gradient checkpointing ------------------------------------------------------------------------

def grads(net: MemoNet, x: dict) -> dict[str, torch.Tensor]:
    net.zero_grad(set_to_none=True)
    run(net, x).square().mean().backward()
    return {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_gives_the_same_gradients_also_under_bf16_autocast():
    """Training switch: recomputation in backward must not change any gradient (T5 trains the
    memory through the Reference Net's motion features, so both nets are covered)."""
    net = make_net()
    perturb(new_modules(net))
    x = inputs(14)
    plain = grads(net, x)
    # Every parameter trains, except the audio-stream output of the last site: no later block
    # reads the audio it hands on (§10 carries audio from block to block).
    last = net.diffusion_net.sites[-1].name
    unused = {n for n, _ in net.named_parameters()} - plain.keys()
    assert unused == {f"diffusion_net.unet.{last}.audio.audio_out.{p}" for p in ("weight", "bias")}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain_bf16 = grads(net, x)
    net.enable_gradient_checkpointing()
    assert all(block.gradient_checkpointing for block in net.diffusion_net.blocks)
    checkpointed = grads(net, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        checkpointed_bf16 = grads(net, x)
    net.disable_gradient_checkpointing()
    assert plain.keys() == checkpointed.keys() == checkpointed_bf16.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)
        torch.testing.assert_close(checkpointed_bf16[name], plain_bf16[name], rtol=1e-5, atol=1e-7, msg=name)
