"""Golden case b (memo_released): the ``motion_module`` temporal kind streamed over clips gives the
released ``MemoryLinearAttnTemporalModule``'s outputs and memories (T1-T6 in the §10 form).

Everything is read from the golden set: the module (its part and key prefix, from the case's
"module" string), its options (the part's ``config.json`` ``motion_module_kwargs``), the tensor
layouts of the call (the case's "call" string), the call sequence and flags ("sequence"), the
memory's leading-index order ("memory_tensors") and the tolerance. The weights load strictly:
every key under the prefix is used and none of the module's is missing.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from memo_zoo.model.released.unet_config import ReleasedUNet3DConfig, motion_module_options
from memo_zoo_plugins.temporal.motion_module import MotionModule, MotionModuleConfig, build
from tests.golden import GoldenSet

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = GoldenSet.named("memo_released")
CASE = GOLDEN.case("b_motion_module")
OUR_LAYOUT = ("b", "f", "c", "h", "w")  # the temporal slot's (B, F, C, H, W)
OUR_MEMORY_ROWS = ("b", "d", "heads")  # MotionModuleContext rows: (b, h*w), then heads


def module_site() -> tuple[str, str]:
    """(part, key prefix) from the case's "module" string.

    E.g. ("diffusion_net", "down_blocks.2.motion_modules.0.") from "diffusion_net.down_blocks.2.motion_modules.0 (..".
    """
    found = re.match(r"\s*([A-Za-z0-9_]+)\.([A-Za-z0-9_.]+)", CASE.meta["module"])
    assert found, f"{CASE.stem}.json: cannot read '<part>.<module path>' from 'module': {CASE.meta['module']!r}"
    return found.group(1), found.group(2) + "."


def released_config(part: str) -> MotionModuleConfig:
    """The zoo options equal to the part's ``motion_module_kwargs`` (every released field read)."""
    path = GOLDEN.path(f"tiny/{part}/config.json")
    kwargs = ReleasedUNet3DConfig.from_mapping(json.loads(path.read_text()), str(path)).motion_kwargs
    options = {name: value for name, (value, _) in motion_module_options(kwargs).items()}
    return MotionModuleConfig(**options)


def released_module() -> MotionModule:
    """The case's module, built from its config and loaded strictly from the part's weights."""
    part, prefix = module_site()
    files = sorted(GOLDEN.path(f"tiny/{part}").glob("*.safetensors"))
    assert len(files) == 1, f"tiny/{part}: expected one .safetensors file, found {files}"
    state = {k[len(prefix):]: v for k, v in load_file(str(files[0])).items() if k.startswith(prefix)}
    assert state, f"{files[0]}: no key starts with {prefix!r}"
    channels = state["temporal_transformer.norm.weight"].shape[0]
    module = build(released_config(part), channels=channels)
    module.load_state_dict(state, strict=True)
    return module.eval()


def call_layouts() -> dict[str, tuple[str, tuple[str, ...]]]:
    """{argument: (tensor name template, axes)} from "call".

    E.g. hidden_states -> ("clipK.stepS.hidden_states", ("b", "c", "f", "h", "w")).
    """
    found = {
        arg: (name, tuple(axis.strip() for axis in axes.split(",")))
        for arg, name, axes in re.findall(r"(\w+)=(\S+) \(([^)]*)\)", CASE.meta["call"])
    }
    for arg in ("hidden_states", "motion_frames"):
        assert arg in found, f"{CASE.stem}.json: 'call' names no {arg}=<tensor> (<axes>): {CASE.meta['call']!r}"
    return found


def ours(tensor: torch.Tensor, axes: tuple[str, ...]) -> torch.Tensor:
    """A released 5-D tensor permuted to (B, F, C, H, W); the one axis not b/c/h/w is the frame axis."""
    frame = [a for a in axes if a not in ("b", "c", "h", "w")]
    assert len(frame) == 1, f"cannot tell the frame axis of {axes}"
    named = ["f" if a == frame[0] else a for a in axes]
    return tensor.permute([named.index(a) for a in OUR_LAYOUT])


def released(tensor: torch.Tensor, axes: tuple[str, ...]) -> torch.Tensor:
    """Inverse of :func:`ours`."""
    frame = [a for a in axes if a not in ("b", "c", "h", "w")][0]
    return tensor.permute([OUR_LAYOUT.index("f" if a == frame else a) for a in axes])


def named(template: str, clip: int, step: int) -> str:
    return template.replace("clipK", f"clip{clip}").replace("stepS", f"step{step}")


def memory_row_order() -> tuple[str, ...]:
    """The leading-index order "memory_tensors" states, e.g. ((b d) heads) -> (b, d, heads)."""
    text = CASE.meta["memory_tensors"]
    found = re.search(r"leading dim:\s*(\(\([^)]*\)[^)]*\))", text)
    assert found, f"{CASE.stem}.json: 'memory_tensors' states no 'leading dim: ((..) ..)' order: {text!r}"
    order = tuple(re.findall(r"[a-z]+", found.group(1)))
    assert sorted(order) == sorted(OUR_MEMORY_ROWS), f"unknown memory row axes {order}"
    return order


def as_released_memory(tensor: torch.Tensor, batch: int, expected_shape: torch.Size) -> torch.Tensor:
    """Our (B*H*W, heads, ...) memory tensor in the release's row order and shape."""
    n, heads = tensor.shape[:2]
    split = tensor.reshape(batch, n // batch, heads, *tensor.shape[2:])
    order = memory_row_order()
    permuted = split.permute(*[OUR_MEMORY_ROWS.index(a) for a in order], *range(3, split.dim()))
    return permuted.reshape(expected_shape)


def memory_names(clip: int, step: int) -> dict[int, dict[str, str]]:
    """{attention block J: {"KV": name, "Z": name}} of the memory tensors the case saved after this call."""
    pattern = re.compile(rf"clip{clip}\.step{step}\.memory\.attention_blocks\.(\d+)\.(\w+)$")
    found: dict[int, dict[str, str]] = {}
    for name in CASE.meta["tensors"]:
        match = pattern.match(name)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = name
    return found


def test_released_weights_fill_the_module_exactly():
    part, prefix = module_site()
    module = released_module()
    full = json.loads(GOLDEN.path("manifest_full.json").read_text())["parts"][part]["state_dict"]
    released_keys = {k[len(prefix):] for k in full if k.startswith(prefix)}
    assert set(module.state_dict()) == released_keys, "state-dict keys differ from the full release's"


def test_motion_module_streams_like_the_release():
    module = released_module()
    layouts = call_layouts()
    hidden_template, hidden_axes = layouts["hidden_states"]
    motion_template, motion_axes = layouts["motion_frames"]
    atol, rtol = GOLDEN.tolerance(CASE)
    sequence = CASE.meta["sequence"]
    assert sequence, "case b lists no calls"
    ctx = None
    compared_memory = 0
    for call in sequence:
        clip, step = call["clip"], call["step"]
        motion = ours(CASE[named(motion_template, clip, step)], motion_axes)
        x = ours(CASE[named(hidden_template, clip, step)], hidden_axes)
        with torch.no_grad():
            ctx = module.context_for_flags(ctx, motion, is_new_audio=call["is_new_audio"],
                                           update_past_memory=call["update_past_memory"])
            out = module(x, ctx)
        where = f"clip {clip} step {step}"
        torch.testing.assert_close(released(out, hidden_axes), CASE[f"clip{clip}.step{step}.output"],
                                   atol=atol, rtol=rtol, msg=lambda m: f"{where} output: {m}")
        saved = memory_names(clip, step)
        if saved:
            assert len(saved) == len(ctx.memory), \
                f"{where}: {len(saved)} saved memories, the module has {len(ctx.memory)}"
        for block, names in saved.items():
            for index, key in enumerate(("KV", "Z")):
                expected = CASE[names[key]]
                got = as_released_memory(ctx.memory[block][index], x.shape[0], expected.shape)
                torch.testing.assert_close(got, expected, atol=atol, rtol=rtol,
                                           msg=lambda m: f"{where} memory block {block} {key}: {m}")
                compared_memory += 1
    assert compared_memory, "case b holds no memory tensors to compare"
