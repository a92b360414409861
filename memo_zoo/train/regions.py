"""Region-weighted velocity loss: more of the objective on the mouth (and face) of aligned crops.

Spec L1's velocity MSE weighs every latent cell alike. In a face crop the mouth covers a few
percent of the frame, and it is the only part that the audio predicts, so almost all of the
gradient goes to reproducing the portrait and almost none to lip sync. Audio-driven portrait
models weight the loss on face and lip regions for this reason (Hallo's face and lip masks,
EchoMimic's landmark masks). This is the box form of that, for aligned crops whose mouth stays in
a known part of the frame (the spec §7 crop; talking_world's portraits):

    w(cell) = 1 + sum_r weight_r * coverage_r(cell),      w_bar = w / mean(w)

where coverage_r is the fraction of the latent cell's area inside region r's box (boxes are in
fractions of the frame, so they need not line up with the latent grid). The per-sample loss is
the mean over frames, channels and cells of w_bar * (v_hat - v)^2. Normalising by mean(w) keeps
the loss of a uniform error unchanged, so robust-loss thresholds (L5) and logged curves keep
their scale; with no regions it is exactly L1's unweighted MSE.

Real mouth boxes: ``mouth_region(frames, weight)`` measures a clip's mouth box from dlib's
68-point landmarks (``memo_zoo.perception.landmarks``: detector, landmarks on sampled frames, the
median lip box with a margin) and returns it as a ``LossRegion``, whose ``box`` a recipe's
``loss_regions`` takes as is. A recipe holds one box for all clips, so measure a few clips of an
aligned dataset (the spec §7 crop puts every mouth in about the same place) and write the box, or
a box around all of theirs, into the recipe. Or let training measure each clip: a region with
``source: landmarks`` (``memo_zoo.train.clip_regions``) gives every sample its own clip's box, and
``region_weight_maps`` builds a map per sample.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
# Shared with expression guidance (E6), so it lives below both; imported here for the old path.
from memo_zoo.model.latent_boxes import box_coverage
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.train.part_configs import LossRegion


def region_weight_map(regions: list[LossRegion], height: int, width: int) -> Tensor | None:
    """The normalised weight map w_bar (height, width) float32 of the module docstring; None when
    there are no regions (the plain MSE, without a multiply)."""
    if not regions:
        return None
    weights = torch.ones(height, width, dtype=torch.float64)
    for region in regions:
        weights += region.weight * box_coverage(region.box, height, width)
    return (weights / weights.mean()).float()


def region_weight_maps(regions: list[LossRegion], height: int, width: int,
                       per_sample: dict[str, list[tuple[float, float, float, float]]]) -> Tensor:
    """(B, height, width) float32: the map of ``region_weight_map`` for each sample, where a region
    named in ``per_sample`` takes that sample's box (``memo_zoo.train.clip_regions``) instead of its
    own, each map normalised by its own mean."""
    counts = {len(boxes) for boxes in per_sample.values()}
    if len(counts) != 1:
        raise ValueError("per-sample loss region boxes: " + ", ".join(
            f"{name} has {len(boxes)} samples" for name, boxes in per_sample.items()) + "; they must agree")
    maps = []
    for b in range(counts.pop()):
        weights = torch.ones(height, width, dtype=torch.float64)
        for region in regions:
            box = per_sample[region.name][b] if region.name in per_sample else region.box
            weights += region.weight * box_coverage(box, height, width)
        maps.append(weights / weights.mean())
    return torch.stack(maps).float()


def landmark_measurer():
    """``(measure, detector kind)``: ``measure(frames, region)`` gives a clip's mouth box in
    fractions of the frame from dlib's 68-point landmarks (the ``best`` detector, every
    ``region.sample_every``-th frame, widened by ``region.margin``), or None when no frame shows
    exactly one face. Loads the models once; ``memo_zoo.train.clip_regions`` calls it per clip."""
    from memo_zoo.errors import MemoZooError
    from memo_zoo.perception.faces import build_detector
    from memo_zoo.perception.landmarks import LandmarkPredictor, clip_mouth_box, frame_landmarks

    detector, predictor = build_detector("best"), LandmarkPredictor(68)

    def measure(frames: np.ndarray, region: LossRegion) -> tuple[float, float, float, float] | None:
        found = frame_landmarks(frames, detector, predictor, region.sample_every)
        if not found:
            return None
        try:
            return clip_mouth_box(found, frames.shape[1], frames.shape[2], region.margin)
        except MemoZooError:  # landmarks outside the frame: no usable box for this clip
            return None

    return measure, detector.kind


def mouth_region(frames: np.ndarray, weight: float, detector: str = "best", margin: float = 0.3,
                 sample_every: int = 5, name: str = "mouth") -> LossRegion:
    """The ``LossRegion`` of a clip's mouth (module docstring): frames RGB uint8 (T, H, W, 3), a
    face detector kind of ``memo_zoo.perception.faces`` (``best``: dlib's CNN where installed),
    the lip box widened by ``margin`` x the lips' width, every ``sample_every``-th frame measured."""
    # imported here: the landmarks need dlib and OpenCV, which training does not otherwise load
    from memo_zoo.perception.faces import build_detector
    from memo_zoo.perception.landmarks import LandmarkPredictor, clip_mouth_box, frame_landmarks

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"mouth_region: frames must be uint8 (T, H, W, 3) RGB, got {frames.dtype} {frames.shape}")
    found = frame_landmarks(frames, build_detector(detector), LandmarkPredictor(68), sample_every)
    box = clip_mouth_box(found, frames.shape[1], frames.shape[2], margin)
    return LossRegion(name=name, box=box, weight=weight)
