"""``preprocess: {kind: quality_filter}``: drop clips whose first frame looks poor (spec §7).

The paper scores the first frame with HyperIQA and keeps clips at 40 or above on its 0-100 scale.
HyperIQA's weights cannot ship with memo-zoo, so two methods are offered:

``method: heuristic`` (default, offline) — a no-reference score on the same 0-100 range, built
from five measurements of the first frame (grey levels, shorter side shrunk to at most 256 px for
the scale-dependent ones). Each is mapped to a quality ``q`` in [0, 1]:

- sharpness: variance of the Laplacian divided by the image variance (so contrast does not count
  twice); q rises linearly in log from 0 at a ratio of 0.005 (heavily blurred) to 1 at 0.15;
- exposure: (1 - share of pixels clipped at <=3 or >=252, counted beyond 5 %, reaching 0 at 50 %)
  x (1 - distance of the mean grey from mid-grey beyond 0.2, reaching 0 at 0.5);
- contrast: RMS contrast (grey standard deviation, 0-1 scale) / 0.15, capped at 1;
- noise: Immerkaer's noise estimate sigma (grey levels); q = 1 at sigma <= 5, 0 at sigma >= 15;
- blockiness: mean step across 8x8 block borders / mean step inside blocks (JPEG / MPEG blocks);
  q = 1 at a ratio <= 1.15, 0 at >= 2.

score = 100 x prod_k (1 - w_k (1 - q_k)) with w = sharpness 0.8, exposure 0.7, contrast 0.5,
noise 0.6, blockiness 0.65: each defect at its worst leaves (1 - w) of the score, so a fully
blurred frame scores at most 20, a blown-out one 30, a blocky one 35, one without contrast 50, and a
clean, sharp, well exposed frame close to 100. With the default threshold 40 a clip is dropped
for one severe defect or two moderate ones. It is a proxy, not calibrated against HyperIQA.

``method: hyperiqa`` — a model from a local file (``weights``): a ``torch.export`` program
(``.pt2``) or a TorchScript file (any other suffix) of the HyperIQA network (hyper network and
target network exported together) mapping (N, 3, 224, 224) crops to N scores.
Input as in HyperIQA's evaluation: the frame resized to 512 x 384 (height x width), ``crops``
224 x 224 crops on an even grid (the original takes random crops; a grid keeps the score
deterministic), ImageNet mean / std normalisation, the score being the mean over the crops. This
is a generic loader: the HyperIQA architecture itself is not implemented here.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from memo_zoo.data.clip import ClipRecord
from memo_zoo.data.media import read_frames
from memo_zoo.data.pipeline import StageResult
from memo_zoo.errors import MemoZooError
from memo_zoo.weights import resolve_weights
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.preprocess.configs import QualityConfig

# Weight of each measurement: the share of the score it removes at its worst (module docstring).
DEFECT_WEIGHTS = {"sharpness": 0.8, "exposure": 0.7, "contrast": 0.5, "noise": 0.6, "blockiness": 0.65}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 1 at ``high``, linear in between (either order)."""
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


def quality_parts(frame: np.ndarray) -> dict[str, float]:
    """The five qualities in [0, 1] of an RGB frame (H, W, 3) uint8; see the module docstring."""
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    factor = min(1.0, 256 / min(height, width))
    # Only shrink: an upscaled (soft) frame must keep looking soft.
    if factor < 1.0:
        gray_small = cv2.resize(gray, (max(1, round(width * factor)), max(1, round(height * factor))),
                                interpolation=cv2.INTER_AREA)
    else:
        gray_small = gray
    small = gray_small.astype(np.float64)
    ratio = cv2.Laplacian(small, cv2.CV_64F).var() / max(small.var(), 1.0)
    sharpness = _ramp(math.log(max(ratio, 1e-12)), math.log(0.005), math.log(0.15))

    # Immerkaer (1996): noise sigma from the mean absolute response to a mask that cancels
    # linear image structure.
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    response = cv2.filter2D(small, cv2.CV_64F, mask)[1:-1, 1:-1]
    sigma = math.sqrt(math.pi / 2) * float(np.abs(response).mean()) / 6 if response.size else 0.0
    noise = 1.0 - _ramp(sigma, 5.0, 15.0)

    levels = gray.astype(np.float64) / 255.0
    clipped = float(np.mean((gray <= 3) | (gray >= 252)))
    exposure = (1.0 - _ramp(clipped, 0.05, 0.5)) * (1.0 - _ramp(abs(levels.mean() - 0.5), 0.2, 0.5))
    contrast = min(1.0, float(levels.std()) / 0.15)

    # Block borders are in the frame's own pixel grid: measured before any resizing.
    full = gray.astype(np.float64)
    dx, dy = np.abs(np.diff(full, axis=1)), np.abs(np.diff(full, axis=0))
    at_x, at_y = (np.arange(dx.shape[1]) % 8) == 7, (np.arange(dy.shape[0]) % 8) == 7
    if at_x.any() and at_y.any() and (~at_x).any() and (~at_y).any():
        across = dx[:, at_x].mean() + dy[at_y].mean()
        inside = dx[:, ~at_x].mean() + dy[~at_y].mean()
        blockiness = 1.0 - _ramp(across / max(inside, 1e-6), 1.15, 2.0)
    else:
        blockiness = 1.0  # a frame under 9 px has no block border to measure
    return {"sharpness": sharpness, "exposure": exposure, "contrast": contrast, "noise": noise,
            "blockiness": blockiness}


def heuristic_quality(frame: np.ndarray) -> float:
    """The 0-100 heuristic score of an RGB frame (module docstring)."""
    parts = quality_parts(frame)
    score = 100.0
    for name, weight in DEFECT_WEIGHTS.items():
        score *= 1.0 - weight * (1.0 - parts[name])
    return float(score)


def grid_crops(image: np.ndarray, size: int, count: int) -> list[np.ndarray]:
    """``count`` crops of ``size`` x ``size`` on an even grid over ``image`` (H, W, C)."""
    height, width = image.shape[:2]
    per_side = math.ceil(math.sqrt(count))
    ys = np.linspace(0, height - size, per_side).round().astype(int)
    xs = np.linspace(0, width - size, per_side).round().astype(int)
    corners = [(y, x) for y in ys for x in xs]
    # Fewer crops than grid points: take them spread over the grid, not the first rows only.
    picks = np.linspace(0, len(corners) - 1, count).round().astype(int)
    return [image[y:y + size, x:x + size] for y, x in (corners[i] for i in picks)]


class HyperIQAModel:
    """An exported HyperIQA model: first frame -> mean score over ``crops`` normalised crops."""

    def __init__(self, weights: str, crops: int, device: str):
        import torch

        path = resolve_weights(weights, "HyperIQA model (TorchScript or torch.export file)")
        try:
            if path.suffix == ".pt2":  # torch.export.save: the successor of TorchScript
                self.model = torch.export.load(str(path)).module().to(device)
            else:
                self.model = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as error:
            raise MemoZooError(f"quality_filter: {path} is neither a TorchScript nor a torch.export (.pt2) model "
                               f"({error}); export the HyperIQA network with torch.export.save or "
                               "torch.jit.save") from None
        self.crops = crops
        self.device = device

    def __call__(self, frame: np.ndarray) -> float:
        import torch

        image = cv2.resize(frame, (384, 512), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        image = (image - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
        batch = np.stack(grid_crops(image, 224, self.crops)).transpose(0, 3, 1, 2)
        with torch.no_grad():
            scores = self.model(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        if not isinstance(scores, torch.Tensor) or scores.numel() != len(batch):
            raise MemoZooError(f"quality_filter: the HyperIQA model must return one score per crop "
                               f"({len(batch)}), got {getattr(scores, 'shape', type(scores).__name__)}")
        return float(scores.float().mean().cpu())


class QualityFilter:
    name = "quality_filter"

    def __init__(self, config: QualityConfig):
        self.config = config
        self.score = HyperIQAModel(config.weights, config.crops, config.device) if config.method == "hyperiqa" \
            else heuristic_quality

    def process(self, clip: ClipRecord, out_dir: Path) -> StageResult:
        frames, _ = read_frames(clip.video, max_frames=1)
        score = self.score(frames[0])
        if score < self.config.threshold:
            return StageResult.drop(f"quality {score:.1f} < {self.config.threshold:g}", score)
        return StageResult.keep(clip, reason=f"quality {score:.1f}", value=score)


def build(config: QualityConfig) -> QualityFilter:
    return QualityFilter(config)
