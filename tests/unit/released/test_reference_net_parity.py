"""The release's Reference Net (A2) against golden case d: clip 0's reference features (Q11, Q13).

The net is the tiny ``reference_net`` in the released layout, loaded strictly; it is called as
the case's ``calls_in_order`` says (the CFG batch's copies of [reference, past frames], timestep 0,
the image tokens of both branches) with ``released_quirks=True`` (Q11's tiling). Every feature
name, shape and the tolerance come from the golden folder.
"""

from __future__ import annotations

import pytest
import torch

from tests.unit.released.helpers import GOLDEN, reference_features, tiny_reference_net

pytestmark = pytest.mark.usefixtures("one_thread")

CASE = GOLDEN.case("d_diffusion_net")
PREFIX = "clip0.ref_features."


@pytest.fixture(scope="module")
def features() -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return reference_features(tiny_reference_net(released_quirks=True), CASE, 0)


def test_the_net_records_exactly_the_released_features(features):
    expected = {name[len(PREFIX):]: tuple(CASE.meta["tensors"][name]["shape"]) for name in CASE.names(PREFIX)}
    assert expected, f"{CASE.stem}: no {PREFIX}* tensors"
    assert {name: tuple(t.shape) for name, t in features.items()} == expected


@pytest.mark.parametrize("name", [n[len(PREFIX):] for n in CASE.names(PREFIX)])
def test_reference_feature_matches_golden(features, name):
    atol, rtol = GOLDEN.tolerance(CASE)
    torch.testing.assert_close(features[name], CASE[PREFIX + name], atol=atol, rtol=rtol)
