"""The FULL-size released networks (issue 18) have exactly the checkpoint's keys and shapes.

Both nets are built on ``torch.device("meta")`` (nothing allocated) from the config each manifest
part records as ``config_used``, with the plugins' ``motion_module`` / ``joint_audio`` kinds at the
diffusion net's sites, and every state-dict key (parameters and persistent buffers) and shape is
compared with ``manifest_full.json``.
"""

from __future__ import annotations

import json

import pytest
import torch

from memo_zoo.model.released.folder import state_mismatch
from memo_zoo.model.released.reference_unet import ReleasedReferenceNet
from memo_zoo.model.released.unet3d import ReleasedDiffusionNet
from memo_zoo.model.released.unet_config import ReleasedReferenceNetConfig, ReleasedUNet3DConfig
from tests.unit.released.helpers import GOLDEN, factories

MANIFEST = json.loads(GOLDEN.path("manifest_full.json").read_text())["parts"]


def build(part: str) -> torch.nn.Module:
    config = MANIFEST[part]["config_used"]
    source = f"manifest_full.json parts.{part}.config_used"
    with torch.device("meta"):
        if part == "reference_net":
            return ReleasedReferenceNet(ReleasedReferenceNetConfig.from_mapping(config, source))
        unet_config = ReleasedUNet3DConfig.from_mapping(config, source)
        return ReleasedDiffusionNet(unet_config, *factories(unet_config))


@pytest.mark.parametrize("part", ["reference_net", "diffusion_net"])
def test_full_size_keys_and_shapes_match_the_manifest(part):
    net = build(part)
    ours = {key: tuple(t.shape) for key, t in net.state_dict().items()}
    assert all(t.is_meta for t in net.state_dict().values())
    expected = {key: tuple(shape) for key, (shape, _dtype) in MANIFEST[part]["state_dict"].items()}
    assert len(expected) == MANIFEST[part]["num_state_dict_keys"]
    missing, extra = sorted(set(expected) - set(ours)), sorted(set(ours) - set(expected))
    assert not missing and not extra, f"{part}: missing {missing[:10]} ({len(missing)}), extra {extra[:10]} ({len(extra)})"
    wrong = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert not wrong, f"{part}: shapes differ (ours, released): {dict(list(wrong.items())[:10])}"
    assert sum(p.numel() for p in net.parameters()) == MANIFEST[part]["num_parameters"]


@pytest.mark.parametrize("part", ["reference_net", "diffusion_net"])
def test_persistent_buffers_are_the_released_ones(part):
    net = build(part)
    params = {name for name, _ in net.named_parameters()}
    buffers = {key: list(t.shape) for key, t in net.state_dict().items() if key not in params}
    assert buffers == {key: shape for key, (shape, _dtype) in MANIFEST[part]["persistent_buffers"].items()}


def test_strict_loader_accepts_the_manifest_shapes():
    """H2's strict check reads manifest stand-ins the same way as a file's tensors."""
    net = build("diffusion_net")
    stand_ins = {k: torch.empty(shape, device="meta") for k, (shape, _d) in MANIFEST["diffusion_net"]["state_dict"].items()}
    _, problems = state_mismatch(net, stand_ins, "manifest_full.json")
    assert problems == []


def test_motion_and_audio_sites_are_counted_as_released():
    net = build("diffusion_net")
    keys = MANIFEST["diffusion_net"]["state_dict"]
    motion = {k.split(".temporal_transformer.")[0] for k in keys if ".motion_modules." in k}
    audio = {k.split(".transformer_blocks.")[0] for k in keys if ".audio_modules." in k and ".transformer_blocks." in k}
    prefixes = [site.prefix for site in net.motion_sites]
    assert len(prefixes) == len(set(prefixes)) and set(prefixes) == motion
    # site order is the forward's: down levels, then mid, then up levels
    order = [p.split(".")[0] for p in prefixes]
    assert order == sorted(order, key=["down_blocks", "mid_block", "up_blocks"].index)
    ours = {name for name, _ in net.named_modules() if name.split(".")[-2:-1] == ["audio_modules"]}
    assert ours == audio


# ---------------------------------------------------------------- the config.json readers

def tiny_config_json(part: str) -> dict:
    return json.loads(GOLDEN.path(f"tiny/{part}/config.json").read_text())


READERS = {"reference_net": ReleasedReferenceNetConfig, "diffusion_net": ReleasedUNet3DConfig}


@pytest.mark.parametrize("part", sorted(READERS))
def test_every_released_config_is_read(part):
    config = READERS[part].from_json(GOLDEN.path(f"tiny/{part}/config.json"))
    assert config.center_input_sample is tiny_config_json(part)["center_input_sample"]
    assert READERS[part].from_mapping(MANIFEST[part]["config_used"]).block_out_channels == \
        MANIFEST[part]["config_used"]["block_out_channels"]


@pytest.mark.parametrize("part, field, value", [
    ("diffusion_net", "unet_use_temporal_attention", True),
    ("diffusion_net", "class_embed_type", "timestep"),
    ("diffusion_net", "dual_cross_attention", True),
    ("diffusion_net", "use_linear_projection", True),
    ("reference_net", "class_embed_type", "timestep"),
    ("reference_net", "num_attention_heads", 8),
    ("reference_net", "transformer_layers_per_block", 2),
    ("reference_net", "addition_embed_type", "text"),
])
def test_what_the_zoo_does_not_build_is_refused_by_name(part, field, value):
    from memo_zoo.model.released.unet_config import ReleasedConfigError

    with pytest.raises(ReleasedConfigError, match=rf"some/{part}/config.json: {field}={value!r} is not supported"):
        READERS[part].from_mapping({**tiny_config_json(part), field: value}, f"some/{part}/config.json")


@pytest.mark.parametrize("part", sorted(READERS))
def test_unknown_keys_and_a_missing_hidden_key_are_refused(part):
    from memo_zoo.model.released.unet_config import ReleasedConfigError

    data = tiny_config_json(part)
    with pytest.raises(ReleasedConfigError, match=r"x.json: blocks_out_channels: unknown key"):
        READERS[part].from_mapping({**data, "blocks_out_channels": [1]}, "x.json")
    del data["center_input_sample"]  # Q2: the released forwards read it
    with pytest.raises(ReleasedConfigError, match=r"x.json: center_input_sample: Field required"):
        READERS[part].from_mapping(data, "x.json")
    # metadata keys (leading "_") are never constructor arguments: accepted, whatever they hold
    READERS[part].from_mapping({**tiny_config_json(part), "_diffusers_version": "9", "_out_channels": 7}, "x.json")
