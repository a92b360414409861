"""The ``scheduler`` slot (spec L1, I3): the sampler of the rectified-flow ODE."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot

if TYPE_CHECKING:  # annotations only: the slot table is imported by `memo-zoo --help`, which loads no torch
    from torch import Tensor


@runtime_checkable
class Sampler(Protocol):
    """Integrator of the rectified-flow ODE from noise (t = 1) to data (t = 0) (spec L1, I3).
    Built by ``factory(config)``.

    ``timesteps()``: ``steps + 1`` decreasing times from 1 to 0. ``step(sample, velocity, t,
    t_next)`` advances one step given the velocity at ``(sample, t)``. Multi-evaluation
    solvers (Heun) also expose ``evaluations_per_step`` and a ``solve(sample, velocity_fn)``
    that calls ``velocity_fn(sample, t)`` as often as they need.
    """

    def timesteps(self) -> Tensor: ...

    def step(self, sample: Tensor, velocity: Tensor, t: float, t_next: float) -> Tensor: ...


SLOT = Slot(
    name="scheduler",
    recipe_path="scheduler",
    description="sampler (spec I3)",
    summary="sampler of the flow-matching ODE (spec I3)",
    protocol=Sampler,
)
