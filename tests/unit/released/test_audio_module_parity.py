"""Golden case c (memo_released): the ``joint_audio`` kind loaded with the released weights gives the
released audio module's outputs (spec E1, E3, §10; golden README Q6-Q9).

Everything comes from the golden set: the modules and their paths (the case JSON's ``modules``),
their weights (the tiny part folder the path starts with, keys under the path), the inner width
(the weights' ``proj_in`` shape), the heads (the part config's ``attention_head_dim`` at the
module's level), the GroupNorm groups (``norm_num_groups``), the "no emotion" row
(``emo_drop_rate > 0``), the emotion pairs and frame counts (the tensor names and shapes) and the
tolerance. The released call takes (b, c, f, h, w) video and (b, f, T, D) audio with one emotion
per sample; the slot's call takes per-frame tokens with one emotion per row, so the test folds
frames into rows and repeats each sample's emotion over its frames, as the host does.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

import pytest
import torch
from safetensors import safe_open

from memo_zoo_plugins.audio_fusion.joint_audio import JointAudioConfig, build
from tests.golden import GoldenSet

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = GoldenSet.named("memo_released")
CASE = GOLDEN.case("c_audio_module")
MODULES = CASE.meta["modules"]
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
# The audio stream's output layers, absent at the final site (README Q7).
AUDIO_OUTPUT_LAYERS = ("audio_ff.", "audio_norm3.", "attn2.to_add_out.")


def split_path(path: str) -> tuple[str, str]:
    """'diffusion_net.down_blocks.2.audio_modules.0' -> ('diffusion_net', 'down_blocks.2.audio_modules.0.')."""
    part, _, inside = path.partition(".")
    assert inside, f"case c module path {path!r} names no module inside a part"
    return part, inside + "."


@lru_cache(maxsize=None)
def part_config(part: str) -> dict:
    return json.loads(GOLDEN.path(f"tiny/{part}/config.json").read_text())


def module_state(part: str, prefix: str) -> dict[str, torch.Tensor]:
    """The tiny part's weights under ``prefix``, prefix removed."""
    path = GOLDEN.path(f"tiny/{part}/{WEIGHTS_FILE}")
    with safe_open(str(path), framework="pt") as weights:
        state = {key[len(prefix):]: weights.get_tensor(key) for key in weights.keys() if key.startswith(prefix)}
    assert state, f"{path}: no keys under {prefix!r}"
    return state


def level_heads(config: dict, prefix: str) -> int:
    """The UNet's heads at the module's level (README Q16: ``attention_head_dim`` counts heads).

    Down block i and the mid block (the last level) read ``attention_head_dim[i]`` / ``[-1]``; up
    block i reads the reversed list, as the released UNet does.
    """
    heads = config["attention_head_dim"]
    levels = len(config["down_block_types"])
    per_level = [heads] * levels if isinstance(heads, int) else list(heads)
    block = re.match(r"(down_blocks|up_blocks)\.(\d+)\.|mid_block\.", prefix)
    assert block, f"case c module {prefix!r} is in no down, mid or up block"
    if block.group(1) == "down_blocks":
        return per_level[int(block.group(2))]
    if block.group(1) == "up_blocks":
        return list(reversed(per_level))[int(block.group(2))]
    return per_level[-1]


def released_module(name: str):
    """The ``joint_audio`` module for case c's module ``name``, weights loaded strictly."""
    entry = MODULES[name]
    part, prefix = split_path(entry["module"])
    config = part_config(part)
    state = module_state(part, prefix)
    inner, channels = state["proj_in.weight"].shape[:2]
    audio_dim = config["audio_attention_dim"]
    null_row = config["emo_drop_rate"] > 0
    rows = state["transformer_blocks.0.norm1.class_embedder.embedding_table.weight"].shape[0]
    heads = level_heads(config, prefix)
    # The JSON restates what the weights and config say; a disagreement is a broken golden set.
    assert (entry["in_channels"], entry["inner_dim"], entry["heads"]) == (channels, inner, heads), entry
    options = JointAudioConfig(num_emotion_classes=rows - int(null_row), null_emotion_row=null_row,
                               double_audio_residual=True)
    module = build(options, channels=channels, audio_dim=audio_dim, inner_channels=inner,
                   final=entry["is_final_block"], heads=heads, norm_groups=config["norm_num_groups"])
    module.load_state_dict(state, strict=True)
    return module.eval()


def emotion_pairs(name: str) -> list[str]:
    pairs = sorted({n[len(name) + 1: -len(".emotion")] for n in CASE.meta["tensors"]
                    if n.startswith(name + ".") and n.endswith(".emotion")})
    assert pairs, f"case c has no <pair>.emotion tensors for {name}"
    return pairs


def test_the_case_lists_modules_and_the_final_one():
    assert MODULES and any(entry["is_final_block"] for entry in MODULES.values())


@pytest.mark.parametrize("name", sorted(MODULES))
def test_released_audio_module_matches_golden(name):
    module = released_module(name)
    atol, rtol = GOLDEN.tolerance(CASE)
    video = CASE[f"{name}.hidden_states"]  # (b, c, f, h, w)
    audio = CASE[f"{name}.audio_tokens"]  # (b, f, T, D)
    b, c, f, h, w = video.shape
    tokens = video.permute(0, 2, 3, 4, 1).reshape(b * f, h * w, c)
    audio_rows = audio.reshape(b * f, *audio.shape[2:])
    for pair in emotion_pairs(name):
        emotion = CASE[f"{name}.{pair}.emotion"].long().repeat_interleave(f)
        with torch.no_grad():
            video_out, audio_out = module(tokens, audio_rows, emotion)
        video_out = video_out.reshape(b, f, h, w, c).permute(0, 4, 1, 2, 3)
        torch.testing.assert_close(video_out, CASE[f"{name}.{pair}.video_out"], atol=atol, rtol=rtol,
                                   msg=lambda m: f"{name}.{pair}.video_out: {m}")
        audio_name = f"{name}.{pair}.audio_out"
        if MODULES[name]["is_final_block"]:
            # The release returns None there; the slot's module hands the input on, which the host drops.
            assert audio_name not in CASE.tensors and audio_out is audio_rows
        else:
            torch.testing.assert_close(audio_out, CASE[audio_name], atol=atol, rtol=rtol,
                                       msg=lambda m: f"{audio_name}: {m}")


def full_audio_modules(state: dict) -> list[str]:
    """The full-size net's audio-module prefixes in network order (down, mid, up; by index)."""
    found = {m.group(0) for key in state for m in [re.match(r"^(.*?\.audio_modules\.\d+\.)", key)] if m}
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}

    def key(prefix: str) -> tuple:
        parts = prefix.split(".")
        return (order[parts[0]], *[int(p) for p in parts if p.isdigit()])

    return sorted(found, key=key)


def test_every_full_size_audio_module_has_the_released_keys_and_shapes():
    """The manifest's 16 full-size audio modules: keys and shapes equal, built on the meta device
    (no memory): inner width from ``proj_in``, the last module final (README Q6, Q7)."""
    manifest = json.loads(GOLDEN.path("manifest_full.json").read_text())
    part = split_path(next(iter(MODULES.values()))["module"])[0]
    state = manifest["parts"][part]["state_dict"]
    # ``<part>.config.json``, or ``<part>.config.RECONSTRUCTED.json`` where the hub file was not at hand.
    configs = sorted(GOLDEN.path("full_configs").glob(f"{part}.config*.json"))
    assert len(configs) == 1, f"full_configs: expected one config of {part}, found {configs}"
    config = json.loads(configs[0].read_text())
    prefixes = full_audio_modules(state)
    assert prefixes, f"manifest part {part} has no audio modules"
    for index, prefix in enumerate(prefixes):
        expected = {key[len(prefix):]: tuple(shape) for key, (shape, _) in state.items() if key.startswith(prefix)}
        inner, channels = expected["proj_in.weight"][:2]
        null_row = config["emo_drop_rate"] > 0
        with torch.device("meta"):
            module = build(JointAudioConfig(null_emotion_row=null_row), channels=channels,
                           audio_dim=config["audio_attention_dim"], inner_channels=inner,
                           final=index == len(prefixes) - 1, heads=level_heads(config, prefix),
                           norm_groups=config["norm_num_groups"])
        built = {key: tuple(value.shape) for key, value in module.state_dict().items()}
        assert built == expected, f"{prefix}: keys or shapes differ from the manifest"
        has_audio_outputs = any(key.startswith(AUDIO_OUTPUT_LAYERS) for key in
                                (k[len("transformer_blocks.0."):] for k in expected))
        assert has_audio_outputs == (index != len(prefixes) - 1), prefix
