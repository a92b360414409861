"""``flow_heun``: Heun's second-order method on the rectified-flow ODE (spec L1, I3 option).

Per step from t to t' (h = t' - t): an Euler predictor z~ = z + h v(z, t), then the trapezoid
corrector z' = z + h (v(z, t) + v(z~, t')) / 2. The final step (t' = 0) stays Euler, as in EDM's
Heun sampler: it saves the evaluation at t = 0, where the network is least reliable, and one
first-order step of size h only adds O(h^2) to the global error, so the method stays second
order. ``steps`` steps cost ``2 steps - 1`` network evaluations.

Heun needs the velocity at a point it chooses, so it integrates through ``solve(sample,
velocity_fn)`` (``evaluations_per_step = 2`` tells the host). ``step(sample, velocity, t, t_next)``,
the one-evaluation interface of the Sampler protocol, can only take an Euler step; a host that
uses it gets Euler on Heun's time grid.
"""

from __future__ import annotations

from typing import Callable

import torch

from memo_zoo_plugins.scheduler.flow_euler import FlowEulerSampler
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.scheduler.configs import FlowHeunConfig


class FlowHeunSampler(FlowEulerSampler):
    """Same time grid and single-velocity ``step`` (an Euler step: one velocity is all that
    interface gives) as flow_euler; ``solve`` makes the Heun steps."""

    evaluations_per_step = 2

    def solve(self, sample: torch.Tensor, velocity_fn: Callable[[torch.Tensor, float], torch.Tensor]) -> torch.Tensor:
        """Integrate from t = 1 to 0 with Heun steps, calling ``velocity_fn(sample, t)``."""
        times = self.timesteps().tolist()
        for t, t_next in zip(times[:-1], times[1:]):
            h = t_next - t
            velocity = velocity_fn(sample, t)
            predicted = sample + h * velocity
            if t_next == 0.0:
                sample = predicted
            else:
                sample = sample + h * 0.5 * (velocity + velocity_fn(predicted, t_next))
        return sample


def build(config: FlowHeunConfig) -> FlowHeunSampler:
    return FlowHeunSampler(config)
