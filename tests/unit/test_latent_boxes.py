"""Boxes on the latent grid (memo_zoo.model.latent_boxes): the cell coverage shared by the region
loss (L-region) and the guide's keep-out mask (E6), against counting sample points."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memo_zoo.model.latent_boxes import box_coverage, keep_out_mask

POINTS = 40  # sample points per cell side: the count's error is at most about 1 / POINTS per side


def counted_coverage(box, height: int, width: int) -> np.ndarray:
    """The share of each cell's sample points (cell-centred sub-grid) inside ``box``: a slow,
    independent estimate of the exact area share."""
    x0, y0, x1, y1 = box
    ys = (np.arange(height * POINTS) + 0.5) / (height * POINTS)
    xs = (np.arange(width * POINTS) + 0.5) / (width * POINTS)
    inside = ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
    return inside.reshape(height, POINTS, width, POINTS).mean(axis=(1, 3))


# x0, y0 and the box's width and height, which keep x0 < x1 <= 1 and y0 < y1 <= 1
boxes = st.tuples(st.floats(0, 0.95), st.floats(0, 0.95), st.floats(0.01, 1), st.floats(0.01, 1)).map(
    lambda b: (b[0], b[1], min(1.0, b[0] + max(b[2] * (1 - b[0]), 0.01)), min(1.0, b[1] + max(b[3] * (1 - b[1]), 0.01))))


@settings(max_examples=25, deadline=None)
@given(box=boxes, height=st.integers(1, 12), width=st.integers(1, 12))
def test_coverage_is_the_share_of_each_cell_inside_the_box(box, height, width):
    exact = box_coverage(box, height, width).numpy()
    assert exact.shape == (height, width)
    assert exact == pytest.approx(counted_coverage(box, height, width), abs=2.5 / POINTS)


@settings(max_examples=25, deadline=None)
@given(first=boxes, second=boxes, height=st.integers(1, 10), width=st.integers(1, 10))
def test_the_keep_out_mask_is_one_minus_the_largest_coverage(first, second, height, width):
    mask = keep_out_mask([first, second], height, width).numpy()
    counted = 1 - np.maximum(counted_coverage(first, height, width), counted_coverage(second, height, width))
    assert mask == pytest.approx(counted, abs=2.5 / POINTS)
    assert mask.min() >= 0 and mask.max() <= 1
    assert (keep_out_mask([(0.0, 0.0, 1.0, 1.0)], height, width) == 0).all()


def test_cells_inside_a_box_are_kept_out_and_cells_outside_are_not():
    # talking_world's mouth box on the 8 x 8 grid: rows 4-5 and columns 3-4 lie wholly inside it
    mask = keep_out_mask([(0.28, 0.5, 0.72, 0.8)], 8, 8)
    assert mask[4:6, 3:5].abs().max() == 0
    assert (mask[:4] == 1).all() and (mask[7:] == 1).all() and (mask[:, :2] == 1).all()
    assert 0 < float(mask[4, 2]) < 1  # the box cuts column 2 (x 0.25-0.375 against x0 = 0.28)
    assert (keep_out_mask([], 3, 5) == 1).all()
