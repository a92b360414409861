"""The release with another temporal component (issue 18, item 7): ``temporal: {kind: self_attention}``
on the tiny release, its modules initialised from the released motion modules where shapes allow.

Every size comes from the tiny release's files (the network's geometry is read from them by the
builder, the motion heads from its ``motion_module_kwargs``), so the test runs unchanged on another
golden folder of this format.
"""

from __future__ import annotations

import pytest
import torch

from memo_zoo.errors import MemoZooError
from memo_zoo.model.released.folder import part_weights_file, read_part_config, read_part_state
from memo_zoo.model.released.init_from_release import (LOADED, NO_COUNTERPART, SHAPE_DIFFERS,
                                                       build_with_temporal, init_temporal_from_release)
from memo_zoo.recipe.components import slot_factories
from memo_zoo.recipe.network import RELEASED, NetworkConfig
from tests.unit.released.helpers import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

BLOCK = "temporal_transformer.transformer_blocks.0."


def self_attention(norm: str = "layer") -> dict:
    heads = read_part_config(TINY, "diffusion_net")["motion_module_kwargs"]["num_attention_heads"]
    return {"kind": "self_attention", "heads": heads, "motion_frames": 2, "norm": norm}


@pytest.fixture(scope="module")
def built(registry):
    network = NetworkConfig(preset=RELEASED, weights=str(TINY))
    return build_with_temporal(network, self_attention(), None, slot_factories(registry))


def test_everything_but_the_motion_modules_is_the_release_s(built):
    net, _ = built
    sites = tuple(site.prefix + "." for site in net.diffusion_net.motion_sites)
    for part in ("reference_net", "diffusion_net", "image_proj"):
        own = getattr(net, part).state_dict()
        for key, value in read_part_state(TINY, part).items():
            if part == "diffusion_net" and key.startswith(sites):
                continue
            assert torch.equal(own[key], value), f"{part}.{key}"
    assert net.temporal_config.kind == "self_attention"
    assert net.audio_fusion_config.kind == "joint_audio"


def test_q_k_v_out_and_norm_come_from_each_site_s_first_attention(built):
    net, report = built
    release = read_part_state(TINY, "diffusion_net")
    loaded = {row.key: row.release_key for row in report.rows if row.status == LOADED}
    for site in net.diffusion_net.motion_sites:
        module = net.diffusion_net.get_submodule(site.prefix)
        pairs = {"to_q.weight": "attention_blocks.0.to_q.weight", "to_k.weight": "attention_blocks.0.to_k.weight",
                 "to_v.weight": "attention_blocks.0.to_v.weight", "to_out.weight": "attention_blocks.0.to_out.0.weight",
                 "to_out.bias": "attention_blocks.0.to_out.0.bias", "norm.inner.weight": "norms.0.weight",
                 "norm.inner.bias": "norms.0.bias"}
        for name, suffix in pairs.items():
            key = f"{site.prefix}.{BLOCK}{suffix}"
            assert loaded[f"{site.prefix}.{name}"] == key
            assert torch.equal(module.get_parameter(name), release[key]), f"{site.prefix}.{name}"
    assert report.count(LOADED) == len(net.diffusion_net.motion_sites) * len(pairs)
    assert report.count(NO_COUNTERPART) == report.count(SHAPE_DIFFERS) == 0
    # what has no role in self_attention is reported unused, the second attention block among it
    assert any(key.endswith("proj_in.weight") for key in report.unused)
    assert any(".attention_blocks.1.to_q.weight" in key for key in report.unused)


def test_report_as_table_and_text(built):
    _, report = built
    table = report.as_table()
    assert set(table) == {"key", "status", "release_key", "detail"}
    assert len({len(column) for column in table.values()}) == 1
    assert table["status"].count("unused") == len(report.unused)
    text = report.table()
    assert text.splitlines()[0] == report.summary()
    assert f"{report.count(LOADED)} loaded" in report.summary()
    assert len(text.splitlines()) == 1 + len(report.rows) + len(report.unused)


def test_the_swapped_network_runs(built):
    net, _ = built
    cfg = net.network_config
    generator = torch.Generator().manual_seed(0)
    b, frames, motion = 1, 2, 2
    h, w = 8, 16
    tokens = net.project_image(torch.randn(b, cfg.image_embed_dim, generator=generator))
    reference = net.encode_reference(torch.randn(b, cfg.latent_channels, h, w, generator=generator), tokens)
    state = net.motion_state(torch.randn(b, motion, cfg.latent_channels, h, w, generator=generator), tokens)
    latents = torch.randn(b, frames, cfg.latent_channels, h, w, generator=generator)
    audio = torch.randn(b, frames, cfg.audio_tokens, cfg.audio_dim, generator=generator)
    with torch.no_grad():
        out = net(latents, torch.tensor(0.5), tokens, audio, torch.zeros(b, dtype=torch.long), reference, state)
    assert out.shape == latents.shape and torch.isfinite(out).all()


def test_other_shapes_and_absent_keys_are_reported_and_left_at_init(built, registry):
    net, _ = built
    fresh, _ = build_with_temporal(NetworkConfig(preset=RELEASED, weights=str(TINY)), self_attention("group"), None,
                                   slot_factories(registry))
    state = dict(read_part_state(TINY, "diffusion_net"))
    first, second = (site.prefix for site in fresh.diffusion_net.motion_sites[:2])
    q = f"{first}.{BLOCK}attention_blocks.0.to_q.weight"
    state[q] = torch.zeros(state[q].shape[0], state[q].shape[1] + 1)
    del state[f"{second}.{BLOCK}attention_blocks.0.to_k.weight"]
    before_q = fresh.diffusion_net.get_parameter(f"{first}.to_q.weight").detach().clone()
    report = init_temporal_from_release(fresh.diffusion_net, state, "doctored")
    rows = {row.key: row for row in report.rows}
    assert rows[f"{first}.to_q.weight"].status == SHAPE_DIFFERS
    assert "release (" in rows[f"{first}.to_q.weight"].detail
    assert torch.equal(fresh.diffusion_net.get_parameter(f"{first}.to_q.weight"), before_q)
    assert rows[f"{second}.to_k.weight"].status == NO_COUNTERPART
    # norm 'group': the GroupNorm takes the motion module's GroupNorm
    assert rows[f"{first}.norm.inner.weight"].release_key == f"{first}.temporal_transformer.norm.weight"
    assert rows[f"{first}.norm.inner.weight"].status == LOADED


def test_a_release_that_differs_outside_the_motion_modules_is_refused(built):
    net, _ = built
    state = dict(read_part_state(TINY, "diffusion_net"))
    del state["conv_in.weight"]
    with pytest.raises(MemoZooError, match=r"doctored: does not fit the network outside its motion modules"
                                           r"(.|\n)*missing: conv_in.weight"):
        init_temporal_from_release(net.diffusion_net, state, "doctored")


def test_needs_a_release_and_a_temporal_kind(registry):
    factories = slot_factories(registry)
    with pytest.raises(MemoZooError, match="model.temporal is needed"):
        build_with_temporal(NetworkConfig(preset=RELEASED, weights=str(TINY)), None, None, factories)
    with pytest.raises(MemoZooError, match="needs model.network.weights"):
        build_with_temporal(NetworkConfig(preset=RELEASED, block_out_channels=(32, 32, 64, 64), norm_num_groups=16,
                                          attention_head_dim=2, cross_attention_dim=24),
                            self_attention(), None, factories)
    assert part_weights_file(TINY, "diffusion_net").is_file()


def test_a_recipe_that_swaps_the_temporal_kind_gets_the_initialised_network(registry):
    """``model.temporal.kind=self_attention`` on the release: build_network (what training and
    generation call) starts it from the released motion modules and keeps the report on the net."""
    from types import SimpleNamespace

    from memo_zoo.model.memo_net import build_network

    model = SimpleNamespace(network=NetworkConfig(preset=RELEASED, weights=str(TINY)), temporal=self_attention(),
                            audio_fusion=None)
    net = build_network(model, slot_factories(registry))
    assert net.temporal_config.kind == "self_attention"
    assert any(row.status == LOADED for row in net.release_init.rows)
