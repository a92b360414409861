"""Registers the built-in samplers."""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def scheduler_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.scheduler import flow_euler, flow_heun, flow_multistep

    return [ComponentSpec("flow_euler", flow_euler.FlowEulerConfig, flow_euler.build,
                          "Euler steps on the rectified-flow ODE (paper default)"),
            ComponentSpec("flow_heun", flow_heun.FlowHeunConfig, flow_heun.build,
                          "Heun's 2nd-order method on the rectified-flow ODE (2 evaluations per step, via solve)"),
            ComponentSpec("flow_multistep", flow_multistep.FlowMultistepConfig, flow_multistep.build,
                          "diffusers' UniPC multistep solver on the rectified-flow ODE (1 evaluation per step)")]
