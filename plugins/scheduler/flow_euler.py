"""``flow_euler``: Euler steps along the rectified-flow ODE (spec L1, I3; the released default).

Rectified flow (L1): z_t = (1 - t) z_0 + t eps, so dz/dt = v = eps - z_0. Sampling integrates
from noise (t = 1) to data (t = 0): z_{t'} = z_t + (t' - t) v(z_t, t). Optional SD3 time shift
t -> s t / (1 + (s - 1) t) spends more steps at high noise for large images. ``sigma_min > 0``
walks diffusers' ``FlowMatchEulerDiscreteScheduler`` grid instead (the released MEMO sampler):
evaluations at ``steps`` times evenly spaced from 1 to ``sigma_min``, then one last step to 0.
"""

from __future__ import annotations

from typing import Callable

import torch
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.scheduler.configs import FlowEulerConfig


def flow_timesteps(steps: int, shift: float, sigma_min: float = 0.0) -> torch.Tensor:
    """``steps + 1`` times from 1 (noise) down to 0 (data), float64 for exact spacing.

    Shared by every flow sampler (flow_heun, flow_multistep) so they walk the same grid.
    ``sigma_min > 0``: the first ``steps`` times are evenly spaced from 1 to ``sigma_min`` and the
    last is 0 (diffusers' flow-match Euler grid, e.g. 3 steps: 1, 0.5005, 0.001, 0).
    """
    if sigma_min > 0:
        t = torch.cat([torch.linspace(1.0, sigma_min, steps, dtype=torch.float64),
                       torch.zeros(1, dtype=torch.float64)])
    else:
        t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    shifted = shift * t / (1 + (shift - 1) * t)
    # The ends are exact by definition; rounding must not leave residual noise at t = 0.
    shifted[0], shifted[-1] = 1.0, 0.0
    return shifted


class FlowEulerSampler:
    evaluations_per_step = 1

    def __init__(self, config: FlowEulerConfig):
        self.config = config

    def timesteps(self) -> torch.Tensor:
        """``steps + 1`` times from 1 (noise) down to 0 (data), float64 for exact spacing."""
        # flow_heun inherits this and has no sigma_min: its grid always ends evenly at 0
        return flow_timesteps(self.config.steps, self.config.shift, getattr(self.config, "sigma_min", 0.0))

    def step(self, sample: torch.Tensor, velocity: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
        return sample + (t_next - t) * velocity

    def solve(self, sample: torch.Tensor, velocity_fn: Callable[[torch.Tensor, float], torch.Tensor]) -> torch.Tensor:
        """Integrate from t = 1 to 0, calling ``velocity_fn(sample, t)`` once per step."""
        times = self.timesteps().tolist()
        for t, t_next in zip(times[:-1], times[1:]):
            sample = self.step(sample, velocity_fn(sample, t), t, t_next)
        return sample


def build(config: FlowEulerConfig) -> FlowEulerSampler:
    return FlowEulerSampler(config)
