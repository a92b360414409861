"""Corrupted motion frames in training, so that appearance comes from the reference (spec T5, T6).

In training, the motion frames a clip's memory is built from (T5) are real video frames; in
generation they are the net's own earlier output (T6), which carries its errors. A net that
learned to copy colour and texture from clean motion frames copies those errors too, and they
add up clip after clip: on the CPU default the background walks from the portrait's blue to pink
over 50 clips while the Reference Net holds the face (docs/results.md, "Left open").

The remedy used for long audio-driven portrait video (Hallo2's patch-drop and Gaussian noise on
the motion frames) makes the motion frames an unreliable source of appearance while keeping
their motion: the net must take appearance from the reference, and can only take from the motion
frames what survives the corruption (where the head and mouth were). Per training sample, on the
motion frames' latents z_m (B, M, c, h, w):

    keep[b, m, i, j] ~ Bernoulli(1 - patch_drop)          per patch of patch_size x patch_size cells
    sigma_b ~ U(0, noise_std)                             per sample
    z_m' = keep * z_m + sigma_b * eps,  eps ~ N(0, I)

Dropped patches are set to 0, the latents' mean for the unit-variance latents that A1's scaling
factor gives. Nothing changes in generation: the context is built from the clean generated
frames, as before. On the CPU default, patch drop 0.25 with noise 0.5 slowed the colour walk in
two training seeds, but lowered lip sync in both (docs/results.md, "Corrupted motion frames"), so
it is off by default.
"""

from __future__ import annotations

import torch
from torch import Tensor
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.train.part_configs import MotionAugmentConfig


def augment_motion(latents: Tensor, config: MotionAugmentConfig, generator: torch.Generator) -> Tensor:
    """The corrupted motion latents (B, M, c, h, w), from CPU draws of ``generator``.

    Draws nothing when ``config`` is off, so a run without augmentation keeps its random stream.
    The patch mask is drawn before the noise levels and the noise, in that order.
    """
    if latents.dim() != 5:
        raise ValueError(f"motion latents must be (B, M, c, h, w); got {tuple(latents.shape)}")
    if not config.enabled:
        return latents
    b, m, _, h, w = latents.shape
    out = latents
    if config.patch_drop > 0:
        p = config.patch_size
        rows, cols = -(-h // p), -(-w // p)
        keep = torch.rand(b, m, 1, rows, cols, generator=generator) >= config.patch_drop
        keep = keep.repeat_interleave(p, dim=3).repeat_interleave(p, dim=4)[..., :h, :w]
        out = out * keep.to(device=out.device, dtype=out.dtype)
    if config.noise_std > 0:
        sigma = torch.rand(b, generator=generator) * config.noise_std
        noise = torch.randn(latents.shape, generator=generator) * sigma.reshape(b, 1, 1, 1, 1)
        out = out + noise.to(device=out.device, dtype=out.dtype)
    return out
