"""Region-weighted velocity loss (memo_zoo.train.regions; spec L1's MSE with a mouth / face map).

The weight map is checked against a slow reference that rasterises the box on a fine grid whose
lines include the box's edges and average-pools it to the latent grid; the loss against the
explicit weighted sum; and the training step against the loss computed by hand.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from memo_zoo.train.config import TrainConfig
from memo_zoo.train.loss import per_sample_mse, velocity_loss
from memo_zoo.train.regions import LossRegion, region_weight_map

FINE = 12  # sub-cells per latent cell in the reference raster


def reference_map(boxes: list[tuple[tuple[int, int, int, int], float]], height: int, width: int) -> torch.Tensor:
    """Boxes given in sub-cell units of a (height * FINE, width * FINE) raster: exact coverages."""
    weights = torch.ones(height, width, dtype=torch.float64)
    for (x0, y0, x1, y1), weight in boxes:
        fine = torch.zeros(height * FINE, width * FINE, dtype=torch.float64)
        fine[y0:y1, x0:x1] = 1.0
        coverage = fine.reshape(height, FINE, width, FINE).mean(dim=(1, 3))
        weights += weight * coverage
    return weights / weights.mean()


@st.composite
def boxes_on_grid(draw):
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    boxes = []
    for _ in range(draw(st.integers(1, 3))):
        x0 = draw(st.integers(0, width * FINE - 1))
        x1 = draw(st.integers(x0 + 1, width * FINE))
        y0 = draw(st.integers(0, height * FINE - 1))
        y1 = draw(st.integers(y0 + 1, height * FINE))
        boxes.append(((x0, y0, x1, y1), draw(st.floats(0.1, 20.0))))
    return height, width, boxes


@settings(max_examples=60, deadline=None)
@given(boxes_on_grid())
def test_weight_map_matches_the_rasterised_reference(case):
    height, width, boxes = case
    regions = [LossRegion(name=f"r{i}", weight=w,
                          box=(x0 / (width * FINE), y0 / (height * FINE), x1 / (width * FINE), y1 / (height * FINE)))
               for i, ((x0, y0, x1, y1), w) in enumerate(boxes)]
    ours = region_weight_map(regions, height, width)
    assert ours.dtype == torch.float32 and ours.shape == (height, width)
    torch.testing.assert_close(ours.double(), reference_map(boxes, height, width), rtol=1e-5, atol=1e-6)
    assert abs(float(ours.mean()) - 1.0) < 1e-5


def test_no_regions_is_the_plain_loss():
    assert region_weight_map([], 8, 8) is None
    g = torch.Generator().manual_seed(0)
    v, z0, eps = (torch.randn(3, 2, 4, 8, 8, generator=g) for _ in range(3))
    torch.testing.assert_close(velocity_loss(v, z0, eps, None), ((v - (eps - z0)) ** 2).flatten(1).mean(1))


def test_weighted_loss_is_the_explicit_weighted_mean_and_keeps_a_uniform_error_unchanged():
    g = torch.Generator().manual_seed(1)
    v, z0, eps = (torch.randn(3, 2, 4, 8, 8, generator=g) for _ in range(3))
    w = region_weight_map([LossRegion(name="mouth", box=(0.28, 0.5, 0.72, 0.8), weight=4.0)], 8, 8)
    expected = torch.stack([sum(float(w[i, j]) * ((v[b, ..., i, j] - (eps - z0)[b, ..., i, j]) ** 2).sum()
                                for i in range(8) for j in range(8)) / (2 * 4 * 64) for b in range(3)])
    torch.testing.assert_close(velocity_loss(v, z0, eps, w), expected.float(), rtol=1e-5, atol=1e-6)
    # A constant error: the normalised map leaves the loss (and L5's threshold scale) as it was.
    ones = torch.ones(2, 1, 4, 8, 8)
    torch.testing.assert_close(per_sample_mse(ones * 3, ones, w), torch.full((2,), 4.0))
    # The mouth now counts more than the rest: an error there costs more than the same error elsewhere.
    mouth, corner = torch.zeros(1, 1, 1, 8, 8), torch.zeros(1, 1, 1, 8, 8)
    mouth[..., 5, 3], corner[..., 0, 0] = 1.0, 1.0
    assert per_sample_mse(mouth, torch.zeros_like(mouth), w) > 4 * per_sample_mse(corner, torch.zeros_like(corner), w)


def test_weights_of_the_wrong_size_are_refused():
    w = region_weight_map([LossRegion(name="mouth", box=(0.2, 0.5, 0.8, 0.8), weight=2.0)], 4, 4)
    with pytest.raises(ValueError, match=r"loss weights \(4, 4\) do not match .*\(8, 8\)"):
        per_sample_mse(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), w)


@pytest.mark.parametrize("box", [(0.5, 0.2, 0.4, 0.9), (0.1, 0.2, 0.4, 1.2), (-0.1, 0.0, 0.5, 0.5), (0.2, 0.3, 0.6, 0.3)])
def test_a_box_outside_the_frame_names_the_region(box):
    with pytest.raises(ValidationError, match="loss region 'mouth'"):
        TrainConfig(loss_regions=[{"name": "mouth", "box": box, "weight": 4}])
    with pytest.raises(ValidationError, match="weight"):
        TrainConfig(loss_regions=[{"name": "mouth", "box": (0.2, 0.5, 0.8, 0.8), "weight": 0}])
