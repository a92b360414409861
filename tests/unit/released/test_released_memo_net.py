"""``ReleasedMemoNet``: the release behind the zoo's ``MemoNet`` API, its recipe section and its checkpoints.

Golden case d is replayed through the zoo's API (``encode_reference``, ``motion_state``, ``forward``
with ``reference_mask``, flow time t = timestep / 1000) instead of the release's flags: the
temporal state carried from call to call as the case's ``sequence`` says. Every size comes from
the tiny release's files and the case JSON.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from memo_zoo.errors import MemoZooError
from memo_zoo.model.memo_net import CONFIG_FILE, MemoNet, build_network, load_network, resolved_model
from memo_zoo.model.released.folder import part_weights_file, read_part_config
from memo_zoo.model.released.memo_net import (FAMILY, NET_PARTS, ReleasedMemoNet, check_full_size_presets,
                                              full_size_config)
from memo_zoo.recipe.network import PRESETS, RELEASED, NetworkConfig
from tests.unit.released.helpers import GOLDEN, TINY
from tests.unit.released.zoo_factories import factories

pytestmark = pytest.mark.usefixtures("one_thread")

CASE = GOLDEN.case("d_diffusion_net")


def model(network: dict | None = None, temporal=None, audio_fusion=None) -> SimpleNamespace:
    options = {"preset": RELEASED, "weights": str(TINY), "released_quirks": True, **(network or {})}
    return SimpleNamespace(network=NetworkConfig(**options), temporal=temporal, audio_fusion=audio_fusion)


@pytest.fixture(scope="module")
def net() -> ReleasedMemoNet:
    return build_network(model(), factories).requires_grad_(False)


def test_every_tensor_is_the_release_s(net):
    state = net.state_dict()
    for part in NET_PARTS:
        stored = load_file(str(part_weights_file(TINY, part)))
        for key, value in stored.items():
            assert torch.equal(state[f"{part}.{key}"], value), f"{part}.{key}"
    assert len(state) == sum(len(load_file(str(part_weights_file(TINY, p)))) for p in NET_PARTS)


def test_geometry_and_component_options_come_from_the_release(net):
    diffusion = read_part_config(TINY, "diffusion_net")
    image = read_part_config(TINY, "image_proj")
    cfg = net.network_config
    assert list(cfg.block_out_channels) == diffusion["block_out_channels"]
    assert cfg.cross_attention_dim == diffusion["cross_attention_dim"]
    assert cfg.audio_dim == diffusion["audio_attention_dim"]
    assert (cfg.image_embed_dim, cfg.image_tokens) == (image["clip_embeddings_dim"], image["clip_extra_context_tokens"])
    assert cfg.audio_tokens == read_part_config(TINY, "audio_proj")["context_tokens"]
    motion = diffusion["motion_module_kwargs"]
    assert net.temporal_config.kind == "motion_module"
    assert net.temporal_config.heads == motion["num_attention_heads"]
    assert net.temporal_config.pe_max_len == motion["temporal_position_encoding_max_len"]
    assert net.audio_fusion_config.double_audio_residual is True
    assert net.audio_fusion_config.null_emotion_row is (diffusion["emo_drop_rate"] > 0)


def _stream_case_d(net: ReleasedMemoNet):
    """Case d's calls through the MemoNet API; yields (call, CFG-batch output in the release layout)."""
    tokens = CASE["encoder_hidden_states"]
    batch = tokens.shape[0]
    uncond = CASE["uc_mask"].reshape(batch, -1)[:, 0]  # one flag per video of the CFG batch
    state, clip_reference, clip_seen = None, None, None
    for call in CASE.meta["sequence"]:
        clip, step = call["clip"], call["step"]
        name = f"clip{clip}.step{step}"
        latents = CASE[f"{name}.latents"].transpose(1, 2)  # (1, F, c, h, w)
        if clip_seen != clip:
            rows = CASE[f"clip{clip}.ref_image_latents"]  # [reference; past frames]
            clip_reference = net.encode_reference(rows[:1].repeat(batch, 1, 1, 1), tokens)
            if call["is_new_audio"]:
                state = None
            state = net.motion_state(rows[1:][None].repeat(batch, 1, 1, 1, 1), tokens, state)
            clip_seen = clip
        t = float(CASE[f"{name}.timestep"]) / 1000.0
        out = net(latents.repeat(batch, 1, 1, 1, 1), torch.full((batch,), t), tokens,
                  CASE[f"clip{clip}.audio_embedding_cfg"], CASE[f"clip{clip}.audio_emotion_cfg"].long(),
                  clip_reference, state, ~uncond)
        yield call, out.transpose(1, 2)


def test_case_d_through_the_memo_net_api(net):
    atol, rtol = GOLDEN.tolerance(CASE)
    with torch.no_grad():
        for call, out in _stream_case_d(net):
            expected = CASE[f"clip{call['clip']}.step{call['step']}.noise_pred_cfg_batch"]
            torch.testing.assert_close(out, expected, atol=atol, rtol=rtol, msg=lambda m: f"{call}: {m}")


def test_save_and_load_in_the_zoo_format(net, tmp_path):
    net.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert saved["family"] == FAMILY and set(saved["released"]) == set(NET_PARTS)
    loaded = MemoNet.from_pretrained(tmp_path, factories)
    assert isinstance(loaded, ReleasedMemoNet)
    assert loaded.configs() == net.configs()
    theirs = loaded.state_dict()
    for key, value in net.state_dict().items():
        assert torch.equal(theirs[key], value), key
    assert isinstance(load_network(tmp_path, factories), ReleasedMemoNet)


def test_from_release_is_the_recipe_section_in_one_call(net):
    direct = ReleasedMemoNet.from_release(TINY, factories=factories, released_quirks=True)
    assert direct.configs() == net.configs()


def test_a_recipe_field_that_contradicts_the_release_is_refused():
    channels = read_part_config(TINY, "diffusion_net")["cross_attention_dim"]
    with pytest.raises(MemoZooError, match=rf"cross_attention_dim is {channels + 1}.*config.json has "
                                           rf"cross_attention_dim {channels}"):
        build_network(model({"cross_attention_dim": channels + 1}), factories)
    heads = read_part_config(TINY, "diffusion_net")["motion_module_kwargs"]["num_attention_heads"]
    with pytest.raises(MemoZooError, match=rf"model.temporal.heads is {heads * 2} but .*config.json gives "
                                           rf"motion_module_kwargs.num_attention_heads = {heads}"):
        build_network(model(temporal={"kind": "motion_module", "heads": heads * 2}), factories)
    # Another temporal kind is a swap (tests/unit/released/test_init_from_release.py); the audio
    # modules have no such initialisation, so another audio kind is refused.
    with pytest.raises(MemoZooError, match="model.audio_fusion.kind is 'cross_attention'"):
        build_network(model(audio_fusion={"kind": "cross_attention"}), factories)


def test_values_equal_to_the_release_s_are_accepted():
    diffusion = read_part_config(TINY, "diffusion_net")
    heads = diffusion["motion_module_kwargs"]["num_attention_heads"]
    built = build_network(model({"cross_attention_dim": diffusion["cross_attention_dim"]},
                                temporal={"kind": "motion_module", "heads": heads, "decay": 0.8}), factories)
    assert built.temporal_config.decay == 0.8  # an option the release does not decide stays the recipe's
    view = resolved_model(model(), factories)
    assert view.network.block_out_channels == tuple(diffusion["block_out_channels"])
    assert view.temporal.heads == heads


def test_network_config_rules():
    with pytest.raises(ValueError, match="only preset memo_released loads"):
        NetworkConfig(preset="tiny", weights=str(TINY))
    with pytest.raises(ValueError, match="released_quirks is an option of preset memo_released"):
        NetworkConfig(preset="sd15", released_quirks=True)
    with pytest.raises(ValueError, match="preconditioning"):
        NetworkConfig(preset=RELEASED, preconditioning="linear_skip")
    with_weights = NetworkConfig(preset=RELEASED, weights="memoavatar/memo")
    assert with_weights.unresolved() and with_weights.block_out_channels is None
    without = NetworkConfig(preset=RELEASED)
    assert not without.unresolved() and without.block_out_channels == PRESETS[RELEASED]["block_out_channels"]


def test_the_preset_is_the_vendored_full_size_config():
    assert check_full_size_presets() == []
    assert full_size_config("diffusion_net")["use_inflated_groupnorm"] is True


def test_without_weights_the_geometry_builds_the_release_s_layout():
    """memo_released without weights, at the tiny release's geometry: the same keys and shapes
    as the tiny release (random weights)."""
    released = build_network(model(), factories).network_config
    geometry = {k: v for k, v in released.model_dump().items() if k not in ("weights",)}
    fresh = build_network(SimpleNamespace(network=NetworkConfig(**geometry), temporal=None, audio_fusion=None),
                          factories)
    expected = {f"{p}.{k}": tuple(v.shape) for p in NET_PARTS for k, v in
                load_file(str(part_weights_file(TINY, p))).items()}
    assert {k: tuple(v.shape) for k, v in fresh.state_dict().items()} == expected


def test_a_checkpoint_whose_temporal_kind_has_unsaved_buffers_reloads(tmp_path):
    """Another temporal kind on the released network (self_attention: a non-persistent position
    table) survives save / load: buffers not in the file are computed, not left on the meta device."""
    from memo_zoo.model.released.memo_net import resolve_released_network
    from memo_zoo.plugin.manager import load_registry
    from memo_zoo.recipe.components import slot_factories

    registry_factories = slot_factories(load_registry(disabled=()))
    resolved = resolve_released_network(NetworkConfig(preset=RELEASED, weights=str(TINY)))
    net = ReleasedMemoNet(resolved, registry_factories("temporal", {"kind": "self_attention"}),
                          registry_factories("audio_fusion", {"kind": "joint_audio", "double_audio_residual": True}))
    saved = dict(net.named_buffers())
    assert set(saved) - set(net.state_dict()), "self_attention should hold a non-persistent buffer"
    net.save_pretrained(tmp_path)
    loaded = load_network(tmp_path, registry_factories)
    for name, buffer in loaded.named_buffers():
        assert not buffer.is_meta and torch.equal(buffer, saved[name]), name
