"""Options of the built-in samplers (spec I3): pydantic only, no torch.

``plugin.py`` registers these without importing the samplers, so ``memo-zoo ls``, ``validate``
and ``schema`` never import torch or diffusers (issue 17.8). Each sampler module imports its
config from here, so the old import paths (``memo_zoo_plugins.scheduler.flow_euler.FlowEulerConfig``,
...) stay.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer


class FlowEulerConfig(BaseModel):
    """Euler sampler for rectified flow."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(20, ge=1, le=1000, description="number of ODE steps (spec §10: 20)")
    shift: float = Field(1.0, gt=0, description="SD3 time shift s; 1 = uniform steps in t")
    sigma_min: float = Field(
        0.0, ge=0, lt=1, description="0: steps evenly spaced from t = 1 to 0. > 0: the network is evaluated at "
                                     "`steps` times evenly spaced from 1 to sigma_min, the last step then goes to 0 "
                                     "(diffusers' FlowMatchEulerDiscreteScheduler, the released MEMO sampler: 0.001 "
                                     "= 1 / its 1000 training timesteps; golden README Q14)")

    @model_serializer(mode="wrap")
    def _without_default_sigma_min(self, handler: Any) -> Any:
        # Left out at 0: the experiment task hashes the scheduler into the names of its generated
        # video sets, and a new option at its default must not rename the existing ones.
        data = handler(self)
        if isinstance(data, dict) and self.sigma_min == 0.0:
            data.pop("sigma_min", None)
        return data


class FlowHeunConfig(BaseModel):
    """Heun (2nd order) sampler for rectified flow."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(10, ge=1, le=1000, description="number of ODE steps (each costs 2 evaluations, the last 1)")
    shift: float = Field(1.0, gt=0, description="SD3 time shift s; 1 = uniform steps in t")


class FlowMultistepConfig(BaseModel):
    """UniPC multistep solver (from diffusers) for rectified flow."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(10, ge=1, le=1000, description="number of ODE steps (one network evaluation each)")
    shift: float = Field(1.0, gt=0, description="SD3 time shift s; 1 = uniform steps in t")
    order: int = Field(2, ge=1, le=3, description="solver order (previous velocities used; first steps warm up)")
    solver_type: Literal["bh1", "bh2"] = Field(
        "bh2", description="UniPC variant: bh1 for very few steps (< 10), bh2 otherwise (diffusers' advice)")
    corrector: bool = Field(True, description="apply UniPC's corrector (UniC); off = the predictor alone (UniP)")
    lower_order_final: bool = Field(True, description="lower the order in the last steps (stabler at few steps)")
