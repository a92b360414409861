"""Colour shift of a training sample's frames (not in the paper; spec L2, T5, T6).

Stage 1 (L2) trains "reference frame -> another frame of the same video". When every video of a
dataset is drawn on backgrounds of similar colours, the net can predict the background from what
it learnt about the dataset, without looking at the reference: on the CPU default the first
generated clip draws the training videos' mean background, not the portrait's (docs/results.md,
"Left open"). And in long generation the motion frames (T5, T6) are the net's own earlier clips,
so every clip's colour error is the next clip's context: the colour walks clip by clip.

This augmentation draws, per sample, a per-channel gain g ~ U(1 - gain, 1 + gain) and offset
o ~ U(-shift, shift) and maps every frame x (in [-1, 1]) to clip(g x + o, -1, 1). The reference
image (for the Reference Net and the image encoder) and the target frames always get the same
transform, so the sample stays one video, in colours no training video had: the target's colours
can then only come from the reference. The motion frames get:

- ``motion: same``: the same transform (the whole sample is recoloured alike);
- ``motion: own``: a transform of their own, so the target's colours agree with the reference's
  and not with the motion frames': the net learns to take colour from the reference and only
  motion from the motion frames, which in generation carry the previous clips' colour errors.

It is off by default and draws nothing when off, so existing runs keep their random streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.train.part_configs import ColourAugmentConfig, ColourJitterConfig


@dataclass
class ColourTransform:
    """Per-sample, per-channel gain and offset, (B, 3) each."""

    gain: Tensor
    offset: Tensor

    def apply(self, frames: Tensor) -> Tensor:
        """clip(g x + o, -1, 1) for frames (B, ..., 3, H, W) in [-1, 1], sample b with row b."""
        if frames.dim() < 4 or frames.shape[0] != self.gain.shape[0] or frames.shape[-3] != 3:
            raise ValueError(f"frames must be (B={self.gain.shape[0]}, ..., 3, H, W); got {tuple(frames.shape)}")
        shape = (frames.shape[0],) + (1,) * (frames.dim() - 4) + (3, 1, 1)
        gain = self.gain.reshape(shape).to(device=frames.device, dtype=frames.dtype)
        offset = self.offset.reshape(shape).to(device=frames.device, dtype=frames.dtype)
        return (frames * gain + offset).clamp(-1.0, 1.0)


def draw_transform(batch: int, config: ColourJitterConfig, generator: torch.Generator) -> ColourTransform:
    """Gains, then offsets, for ``batch`` samples from CPU draws (a part that is off draws nothing)."""
    gain = torch.ones(batch, 3)
    offset = torch.zeros(batch, 3)
    if config.gain > 0:
        gain = 1.0 + (2.0 * torch.rand(batch, 3, generator=generator) - 1.0) * config.gain
    if config.shift > 0:
        offset = (2.0 * torch.rand(batch, 3, generator=generator) - 1.0) * config.shift
    return ColourTransform(gain=gain, offset=offset)


def draw_colour(batch: int, config: ColourAugmentConfig,
                generator: torch.Generator) -> tuple[ColourTransform, ColourTransform] | None:
    """(the sample's transform, the motion frames' transform), or None when ``config`` is off.

    In 'own' mode the motion frames' transform is drawn after the sample's; in 'same' mode it is
    the sample's, and nothing more is drawn.
    """
    if not config.enabled:
        return None
    sample = draw_transform(batch, config, generator)
    motion = sample if config.motion == "same" else draw_transform(batch, config, generator)
    return sample, motion
