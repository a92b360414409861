"""Boxes in fractions of the frame, read on a latent grid.

A box (x0, y0, x1, y1) is given in fractions of the frame so that one recipe serves any resolution
and any autoencoder downsampling; its cells rarely line up with the latent grid, so a cell counts
by the fraction of its area inside the box. The training loss weights cells by it (``loss_regions``,
an addition under L1 in docs/method.md; ``memo_zoo.train.regions``) and expression guidance keeps its step out of it (E6,
``memo_zoo.generate.expression_guidance``), which is why it sits below both.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

Box = tuple[float, float, float, float]


def _coverage_1d(start: float, end: float, cells: int) -> Tensor:
    """Fraction of each of ``cells`` equal intervals of [0, 1] that lies inside [start, end]."""
    edges = torch.linspace(0.0, 1.0, cells + 1, dtype=torch.float64)
    overlap = (torch.minimum(edges[1:], torch.tensor(end)) - torch.maximum(edges[:-1], torch.tensor(start)))
    # divided by each cell's own length, not times ``cells``: a cell wholly inside is then exactly 1
    return overlap.clamp(min=0.0) / (edges[1:] - edges[:-1])


def box_coverage(box: Box, height: int, width: int) -> Tensor:
    """(height, width) float64: the fraction of each latent cell's area inside ``box`` (x0, y0,
    x1, y1 in fractions of the frame)."""
    x0, y0, x1, y1 = box
    return torch.outer(_coverage_1d(y0, y1, height), _coverage_1d(x0, x1, width))


def keep_out_mask(boxes: Sequence[Box], height: int, width: int) -> Tensor:
    """(height, width) float64 in [0, 1]: 1 - the largest coverage of a cell by any of ``boxes``, so
    a cell wholly inside a box gets 0, one outside all of them 1 and a cell a box cuts the share of
    it outside (overlapping boxes do not subtract twice); all ones when there are no boxes."""
    mask = torch.ones(height, width, dtype=torch.float64)
    for box in boxes:
        mask = torch.minimum(mask, 1.0 - box_coverage(box, height, width))
    return mask
