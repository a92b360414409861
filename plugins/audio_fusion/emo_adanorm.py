"""Emotion-adaptive LayerNorm (spec E3) and the emotion options shared by the audio-fusion components.

Holds ``EmoAdaNorm`` and ``make_norm``, which picks EmoAdaNorm or a plain LayerNorm behind one call
signature. ``EmotionOptions`` (config fields every fusion component inherits, so fusion and emotion
can be ablated independently) lives in the torch-free ``configs`` and is re-exported here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from .configs import EmotionOptions


class EmoAdaNorm(nn.Module):
    """Emo-AdaNorm (E3): out = (1 + alpha) * LayerNorm(x) + beta, (alpha, beta) = Linear(SiLU(e)).

    ``e`` is a row of a learned table with ``num_classes + 1`` rows; the last row
    (``no_emotion_index``) is the "no emotion" embedding used when the label is missing and for
    classifier-free guidance. The LayerNorm has no affine parameters and the modulation Linear is
    zero-initialised, so a new EmoAdaNorm equals a plain affine-free LayerNorm for every label.
    """

    def __init__(self, dim: int, num_classes: int, embedding_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.num_classes = num_classes
        self.eps = eps
        self.embedding = nn.Embedding(num_classes + 1, embedding_dim)
        self.modulation = nn.Linear(embedding_dim, 2 * dim)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    @property
    def no_emotion_index(self) -> int:
        return self.num_classes

    def labels(self, emotion: Tensor | None, batch: int) -> Tensor:
        """Class indices (batch,); None -> the "no emotion" index for every item."""
        if emotion is None:
            return torch.full((batch,), self.no_emotion_index, dtype=torch.long, device=self.embedding.weight.device)
        if emotion.shape != (batch,):
            raise ValueError(f"emotion must be a LongTensor of shape ({batch},); got {tuple(emotion.shape)}")
        return emotion.long()

    def forward(self, x: Tensor, emotion: Tensor | None = None) -> Tensor:
        """x (N, L, dim), emotion (N,) or None -> (N, L, dim)."""
        e = self.embedding(self.labels(emotion, x.shape[0]))
        alpha, beta = self.modulation(F.silu(e)).to(x.dtype).unsqueeze(1).chunk(2, dim=-1)
        return (1 + alpha) * F.layer_norm(x, (self.dim,), eps=self.eps) + beta


class _PlainNorm(nn.LayerNorm):
    """LayerNorm with EmoAdaNorm's call signature; the emotion label is ignored."""

    def forward(self, x: Tensor, emotion: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return super().forward(x)


def make_norm(dim: int, options: EmotionOptions) -> nn.Module:
    """The norm of one modality branch: ``norm(x, emotion)`` either way."""
    if options.emotion_conditioning:
        return EmoAdaNorm(dim, options.num_emotion_classes, options.emotion_embedding_dim)
    return _PlainNorm(dim, eps=1e-6)
