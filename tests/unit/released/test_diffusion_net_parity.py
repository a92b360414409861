"""The release's Diffusion Net (A3) against golden case d and its no-inflated-GroupNorm variant.

One tiny ``diffusion_net`` (released layout, strict load, the plugins' ``motion_module`` and
``joint_audio`` kinds at every site) is called in the order of the case's ``sequence``, its
temporal state carried between calls as the release carries its memory (T6): ``is_new_audio`` =
fresh state + update, ``update_past_memory`` = update. The CFG-batch output and the guided
prediction (scale read from the case's ``calls_in_order``) are compared at the golden tolerance.
``released_quirks=True`` reproduces Q11/Q12, as the golden data were made with them.
"""

from __future__ import annotations

import re

import pytest
import torch

from tests.unit.released.helpers import GOLDEN, stream_case_d, tiny_diffusion_net, tiny_reference_net

pytestmark = pytest.mark.usefixtures("one_thread")

CASE = GOLDEN.case("d_diffusion_net")
VARIANT = GOLDEN.case("d_variant_no_inflated_groupnorm")


def guidance_scale() -> float:
    """The scale in the case's ``noise_pred_guided = u + S * (c - u)`` line."""
    for line in CASE.meta["calls_in_order"]:
        found = re.search(r"noise_pred_guided\s*=\s*u\s*\+\s*([0-9.]+)\s*\*\s*\(c\s*-\s*u\)", line)
        if found:
            return float(found.group(1))
    raise AssertionError(f"{CASE.stem}.json: no 'noise_pred_guided = u + S * (c - u)' line in calls_in_order")


@pytest.fixture(scope="module")
def reference_net():
    return tiny_reference_net(released_quirks=True)


@pytest.fixture(scope="module")
def outputs(reference_net) -> list[tuple[dict, torch.Tensor]]:
    net = tiny_diffusion_net(released_quirks=True)
    with torch.no_grad():
        return list(stream_case_d(reference_net, net, CASE, CASE.meta["sequence"]))


def test_the_sequence_is_streamed_in_order(outputs):
    assert [(c["clip"], c["step"]) for c, _ in outputs] == [(c["clip"], c["step"]) for c in CASE.meta["sequence"]]
    for call, _ in outputs:
        assert float(CASE[f"clip{call['clip']}.step{call['step']}.timestep"]) == pytest.approx(call["timestep"])


@pytest.mark.parametrize("index", range(len(CASE.meta["sequence"])))
def test_cfg_batch_and_guided_prediction_match_golden(outputs, index):
    call, out = outputs[index]
    name = f"clip{call['clip']}.step{call['step']}"
    atol, rtol = GOLDEN.tolerance(CASE)
    torch.testing.assert_close(out, CASE[f"{name}.noise_pred_cfg_batch"], atol=atol, rtol=rtol)
    uncond, cond = out.chunk(2)
    guided = uncond + guidance_scale() * (cond - uncond)
    torch.testing.assert_close(guided, CASE[f"{name}.noise_pred_guided"], atol=atol, rtol=rtol)


def test_variant_without_inflated_groupnorm_matches_golden(reference_net):
    """Q9: the variant's net pools its resnet / conv_norm_out statistics over the frames."""
    names = VARIANT.names()
    assert len(names) == 1, f"{VARIANT.stem}: expected one tensor, got {names}"
    clip, step = (int(x) for x in re.fullmatch(r"clip(\d+)\.step(\d+)\.noise_pred_cfg_batch", names[0]).groups())
    calls = [c for c in CASE.meta["sequence"] if (c["clip"], c["step"]) == (clip, step)]
    assert len(calls) == 1 and calls[0]["is_new_audio"], f"{names[0]}: must be a first call of case d"
    net = tiny_diffusion_net(released_quirks=True, use_inflated_groupnorm=False)
    assert not net.config.use_inflated_groupnorm
    with torch.no_grad():
        [(_, out)] = list(stream_case_d(reference_net, net, CASE, calls))
    atol, rtol = GOLDEN.tolerance(VARIANT)
    torch.testing.assert_close(out, VARIANT[names[0]], atol=atol, rtol=rtol)
    # and it is the variant that is matched, not case d again
    assert (out - CASE[names[0]]).abs().max() > 100 * atol

