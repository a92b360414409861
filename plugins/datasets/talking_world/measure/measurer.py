"""``WorldMeasurer``: a small CNN that reads mouth opening, identity and expression off talking_world frames.

One trunk on RGB frames at the world's size (64 px by default; other sizes are resized with
bilinear interpolation) and three heads, trained by :mod:`.training` on the world's renders
against its per-frame truth (``plugins/datasets/talking_world/truth.py``):

- mouth: regression of the opening as rendered (truth ``mouth_area``, speech and expression) and
  of the speech-driven opening (truth ``mouth_open``); the two outputs are in truth units (the
  network predicts standardised values, de-standardised with the training targets' mean and
  standard deviation, kept as buffers);
- identity: a 64-d L2-normalised embedding. It is trained as a classification over the train
  identities with an additive cosine margin (CosFace, Wang et al. 2018: logits ``s * (cos - m)``
  for the true class, ``s * cos`` for the others) rather than plain softmax, because the
  embedding is used by cosine similarity on identities it never saw (held-out speakers, generated
  faces): the margin makes the cosine itself the trained quantity and pulls each class together
  on the sphere, whereas softmax only needs the classes linearly separable, which with ~10 train
  identities leaves the within-identity spread (pose, expression) large for unseen faces;
- expression: logits over the 8 labels of spec E4 (``memo_zoo.emotion.PAPER_LABELS`` order).

``features()`` gives the trunk's pooled feature vector (global average of the last feature map),
the representation whose Frechet distance ``world_fd`` reports.

Checked on held-out renders of the default world (``training.py``): mouth r 0.965 (vs truth
``mouth_area``) and 0.923 (vs ``mouth_open``), expression accuracy 85 % (chance 12.5 %), identity
verification ROC-AUC 0.997 on the 2 held-out identities. The embedding is not fully invariant to
expression (docs/evaluation.md): it suits comparisons between videos more than absolute readings.

The architecture is fixed by :class:`MeasurerShape`, which is stored with the weights so that a
saved measurer loads without its training options.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from memo_zoo.emotion import PAPER_LABELS


@dataclass(frozen=True)
class MeasurerShape:
    """What the network looks like: input side, base channel width, embedding width, classes."""

    size: int = 64
    width: int = 16
    embed_dim: int = 64
    identities: int = 10
    emotions: int = len(PAPER_LABELS)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class MeasurerOutput(NamedTuple):
    """One forward pass: ``features`` (N, F), ``mouth`` (N, 2) = (area, open) in truth units,
    ``identity`` (N, E) unit norm, ``expression`` (N, 8) logits."""

    features: torch.Tensor
    mouth: torch.Tensor
    identity: torch.Tensor
    expression: torch.Tensor


@dataclass(frozen=True)
class Measurements:
    """Per-frame readings of a video, numpy float64: ``mouth_area``, ``mouth_open`` (T,),
    ``identity`` (T, E) unit norm, ``expression`` (T, 8) logits, ``features`` (T, F)."""

    mouth_area: np.ndarray
    mouth_open: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    features: np.ndarray

    @property
    def expression_label(self) -> np.ndarray:
        """Most likely spec E4 label index per frame."""
        return np.argmax(self.expression, axis=1)


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class WorldMeasurer(nn.Module):
    """Trunk + mouth, identity and expression heads (module docstring)."""

    def __init__(self, shape: MeasurerShape = MeasurerShape()):
        super().__init__()
        self.shape = shape
        w = shape.width
        # Four stride-2 stages take 64 px to 4 x 4; the stride-1 layers add capacity where maps are
        # small (cheap on CPU, which is where the measurer is usually trained).
        self.trunk = nn.Sequential(
            _conv(3, w, 2), _conv(w, 2 * w, 2), _conv(2 * w, 2 * w, 1),
            _conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w, 1), _conv(4 * w, self.feature_dim, 2))
        f = self.feature_dim
        self.mouth_head = nn.Sequential(nn.Linear(f, f), nn.ReLU(inplace=True), nn.Linear(f, 2))
        self.identity_head = nn.Sequential(nn.Linear(f, f), nn.ReLU(inplace=True), nn.Linear(f, shape.embed_dim))
        self.expression_head = nn.Sequential(nn.Linear(f, f), nn.ReLU(inplace=True), nn.Linear(f, shape.emotions))
        # class centres of the train identities (CosFace); used in training only, saved with the rest
        self.identity_classes = nn.Parameter(torch.randn(shape.identities, shape.embed_dim) * 0.1)
        # mouth targets are learned standardised; these map the outputs back to truth units
        self.register_buffer("mouth_mean", torch.zeros(2))
        self.register_buffer("mouth_std", torch.ones(2))

    @property
    def feature_dim(self) -> int:
        return 6 * self.shape.width

    @property
    def device(self) -> torch.device:
        return self.mouth_mean.device

    # ---- input ----------------------------------------------------------------------------------
    def to_input(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 RGB (N, H, W, 3) -> float (N, 3, size, size) in [-1, 1] on the measurer's device;
        frames of another size are resized with bilinear interpolation."""
        x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {tuple(x.shape)} {x.dtype}")
        x = x.to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if x.shape[-2:] != (self.shape.size, self.shape.size):
            x = F.interpolate(x, size=(self.shape.size, self.shape.size), mode="bilinear", align_corners=False)
        return x

    # ---- network --------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, size, size) input -> (N, F) pooled trunk features."""
        return self.trunk(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> MeasurerOutput:
        features = self.features(x)
        mouth = self.mouth_head(features) * self.mouth_std + self.mouth_mean
        identity = F.normalize(self.identity_head(features), dim=1)
        return MeasurerOutput(features, mouth, identity, self.expression_head(features))

    def standardised_mouth(self, mouth: torch.Tensor) -> torch.Tensor:
        """Truth-unit mouth values -> the scale the head is trained on."""
        return (mouth - self.mouth_mean) / self.mouth_std

    # ---- measuring videos -----------------------------------------------------------------------
    @torch.no_grad()
    def measure(self, frames: np.ndarray, batch_size: int = 256) -> Measurements:
        """Read every frame of a uint8 (T, H, W, 3) video, ``batch_size`` frames per pass."""
        was_training = self.training
        self.eval()  # BatchNorm with its running statistics: a frame's reading must not depend on its batch
        try:
            parts = [self(self.to_input(frames[s:s + batch_size])) for s in range(0, len(frames), batch_size)]
        finally:
            self.train(was_training)
        out = MeasurerOutput(*(torch.cat([getattr(p, name) for p in parts]).double().cpu().numpy()
                               for name in MeasurerOutput._fields))
        return Measurements(mouth_area=out.mouth[:, 0], mouth_open=out.mouth[:, 1], identity=out.identity,
                            expression=out.expression, features=out.features)
