"""Rectified-flow objective (spec L1) and the flow-time samplers.

Forward process: z_t = (1 - t) z_0 + t eps, t in [0, 1] (t = 1 is pure noise, as the flow
samplers integrate from 1 to 0). The network predicts the velocity v = dz_t/dt = eps - z_0.

The paper writes the loss on the noise, weighted by lambda(t) = 1 / (1 - t)^2. With the noise
recovered from a velocity prediction, eps_hat = z_t + (1 - t) v_hat, the two are one loss:

    lambda(t) |eps_hat - eps|^2 = |(1 - t)(v_hat - v)|^2 / (1 - t)^2 = |v_hat - v|^2,

and the velocity form never divides by (1 - t), which blows up at t -> 1. So training minimises
the unweighted velocity MSE; ``weighted_noise_loss`` is kept to test the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    """(B,) times broadcast against (B, ...) tensors."""
    if t.dim() != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must be ({like.shape[0]},); got {tuple(t.shape)}")
    return t.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def noisy_latents(z0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """z_t = (1 - t) z_0 + t eps (L1); ``t`` is (B,)."""
    tt = _per_sample(t, z0)
    return (1 - tt) * z0 + tt * noise


def velocity_target(z0: Tensor, noise: Tensor) -> Tensor:
    """v = eps - z_0, the time derivative of z_t (L1)."""
    return noise - z0


def per_sample_mse(prediction: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Mean squared error per sample: (B, ...) -> (B,), computed in float32 at least.

    Per sample rather than per batch so that robust training (L5) can drop single samples.
    ``weights`` (H, W), or (B, H, W) with a map per sample, each of mean 1, multiplies the squared
    error of each spatial cell (the last two dims; ``memo_zoo.train.regions``).
    """
    dtype = torch.promote_types(torch.promote_types(prediction.dtype, target.dtype), torch.float32)
    squared = (prediction.to(dtype) - target.to(dtype)).pow(2)
    if weights is not None:
        spatial = tuple(squared.shape[-2:])
        if tuple(weights.shape) not in (spatial, (squared.shape[0], *spatial)):
            raise ValueError(f"loss weights {tuple(weights.shape)} do not match the latents' spatial size "
                             f"{spatial} (or {(squared.shape[0], *spatial)}, a map per sample)")
        if weights.dim() == 3:  # one map per sample: broadcast over the dims between batch and space
            weights = weights.reshape(weights.shape[0], *([1] * (squared.dim() - 3)), *spatial)
        squared = squared * weights.to(device=squared.device, dtype=dtype)
    return squared.flatten(1).mean(dim=1)


def velocity_loss(velocity: Tensor, z0: Tensor, noise: Tensor, weights: Tensor | None = None) -> Tensor:
    """Per-sample velocity MSE (B,), the training objective (L1); unweighted unless ``weights``
    (a region map of ``memo_zoo.train.regions``) is given."""
    return per_sample_mse(velocity, velocity_target(z0, noise), weights)


def data_loss_from_velocity_loss(loss: Tensor, t: Tensor) -> Tensor:
    """The released MEMO's objective from the velocity MSE (B,): it recovers the clean latents
    z0_hat = z_t - t v_hat and takes |z0_hat - z_0|^2 = t^2 |v_hat - v|^2, so each sample's velocity
    loss is weighted by t^2 (``loss_target: data``; its finetune.py with logit-normal times)."""
    return loss * t.to(loss.dtype).pow(2)


def noise_from_velocity(z_t: Tensor, velocity: Tensor, t: Tensor) -> Tensor:
    """eps implied by a velocity at (z_t, t): z_t = eps - (1 - t) v, so eps = z_t + (1 - t) v."""
    return z_t + (1 - _per_sample(t, z_t)) * velocity


def weighted_noise_loss(noise_prediction: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """The paper's form: lambda(t) |eps_hat - eps|^2 with lambda(t) = 1/(1 - t)^2, per sample (B,).

    Equal to ``velocity_loss`` for eps_hat = ``noise_from_velocity`` (see the module docstring);
    only for tests and documentation: it is unstable as t -> 1.
    """
    weight = (1 - t.double()).pow(-2)
    return per_sample_mse(noise_prediction.double(), noise.double()) * weight


def logit_normal(count: int, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """``count`` flow times t = sigmoid(N(mean, std^2)) in (0, 1), float32 (SD3's default, L1).

    Mass concentrates around t = sigmoid(mean), where predicting the velocity is hardest, and
    thins towards the ends, where the target is nearly the noise or nearly the data.
    """
    return torch.sigmoid(mean + std * torch.randn(count, generator=generator))


def uniform_times(count: int, generator: torch.Generator | None = None) -> Tensor:
    """``count`` flow times uniform in [0, 1)."""
    return torch.rand(count, generator=generator)


def sample_times(count: int, distribution: str, mean: float, std: float,
                 generator: torch.Generator | None = None) -> Tensor:
    """Flow times of a ``TimestepConfig``'s distribution."""
    if distribution == "logit_normal":
        return logit_normal(count, mean, std, generator)
    if distribution == "uniform":
        return uniform_times(count, generator)
    raise ValueError(f"unknown timestep distribution {distribution!r}")
