"""Registers the built-in samplers."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo_plugins.scheduler import flow_euler


@hookimpl
def scheduler_components() -> list[ComponentSpec]:
    return [ComponentSpec("flow_euler", flow_euler.FlowEulerConfig, flow_euler.build,
                          "Euler steps on the rectified-flow ODE (paper default)")]
