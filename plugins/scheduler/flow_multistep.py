"""``flow_multistep``: diffusers' UniPC multistep solver on the rectified-flow ODE (spec L1, I3 option).

A higher-order solver at one network evaluation per step: ``diffusers.UniPCMultistepScheduler``
with ``use_flow_sigmas=True, prediction_type="flow_prediction"``. diffusers' flow convention is
memo-zoo's (L1): x_sigma = (1 - sigma) x_0 + sigma eps and the model predicts v = eps - x_0, so
sigma is our t and the velocity is passed through unchanged. The time grid is flow_euler's
(``steps``, SD3 ``shift``), handed to diffusers as custom sigmas.

State: a multistep solver remembers the previous velocities (and UniPC corrects the incoming
sample with the new one), so ``step`` must be called on this sampler's own grid, in order. A
call at t = 1 starts a new trajectory (each autoregressive clip, spec I1, starts from noise);
any other out-of-order call raises. One trajectory at a time per sampler object.

diffusers keeps log(alpha) finite by starting at sigma = 1 - 1e-6 instead of 1: the first step
treats pure noise as if a 1e-6 share of it were data, an error of 1e-6 |eps - x_0|, far below
bf16/fp16 resolution. Its sigmas are float32 as well.
"""

from __future__ import annotations

from typing import Callable

import torch

from memo_zoo_plugins.scheduler.flow_euler import flow_timesteps
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo_plugins.scheduler.configs import FlowMultistepConfig


class FlowMultistepSampler:
    evaluations_per_step = 1

    def __init__(self, config: FlowMultistepConfig):
        from diffusers import UniPCMultistepScheduler  # heavy import, only when this component is used

        self.config = config
        self._times = flow_timesteps(config.steps, config.shift)
        self.scheduler = UniPCMultistepScheduler(
            solver_order=config.order, prediction_type="flow_prediction", use_flow_sigmas=True,
            flow_shift=1.0,  # our grid is already shifted; diffusers would shift the given sigmas again
            solver_type=config.solver_type, predict_x0=True, lower_order_final=config.lower_order_final,
            disable_corrector=[] if config.corrector else list(range(config.steps)), final_sigmas_type="zero")
        self._reset()

    def _reset(self) -> None:
        # set_timesteps also clears the solver's history (model_outputs, last_sample, step index).
        self.scheduler.set_timesteps(sigmas=self._times[:-1].numpy().copy())
        self.scheduler.set_begin_index(0)
        self._index = 0

    def timesteps(self) -> torch.Tensor:
        return self._times.clone()

    def step(self, sample: torch.Tensor, velocity: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
        if t == 1.0:
            self._reset()
        i = self._index
        finished = i >= self.config.steps
        if finished or abs(t - float(self._times[i])) > 1e-9 or abs(t_next - float(self._times[i + 1])) > 1e-9:
            expected = ("a new trajectory at t = 1" if finished
                        else f"t = {float(self._times[i])}, t_next = {float(self._times[i + 1])}")
            raise ValueError(f"flow_multistep keeps a history of velocities and must be stepped along its own "
                             f"timesteps() in order: expected {expected}, got t = {t}, t_next = {t_next}")
        out = self.scheduler.step(velocity, self.scheduler.timesteps[i], sample, return_dict=False)[0]
        self._index += 1
        return out.to(sample.dtype)

    def solve(self, sample: torch.Tensor, velocity_fn: Callable[[torch.Tensor, float], torch.Tensor]) -> torch.Tensor:
        """Integrate from t = 1 to 0, calling ``velocity_fn(sample, t)`` once per step."""
        times = self._times.tolist()
        for t, t_next in zip(times[:-1], times[1:]):
            sample = self.step(sample, velocity_fn(sample, t), t, t_next)
        return sample


def build(config: FlowMultistepConfig) -> FlowMultistepSampler:
    return FlowMultistepSampler(config)
