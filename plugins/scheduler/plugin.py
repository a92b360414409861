"""Registers the built-in samplers."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def scheduler_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no component module (issue 17.8).
    from memo_zoo_plugins.scheduler import configs

    return [ComponentSpec("flow_euler", configs.FlowEulerConfig,
                          lazy("memo_zoo_plugins.scheduler.flow_euler:build"),
                          "Euler steps on the rectified-flow ODE (paper default)"),
            ComponentSpec("flow_heun", configs.FlowHeunConfig, lazy("memo_zoo_plugins.scheduler.flow_heun:build"),
                          "Heun's 2nd-order method on the rectified-flow ODE (2 evaluations per step, via solve)"),
            ComponentSpec("flow_multistep", configs.FlowMultistepConfig,
                          lazy("memo_zoo_plugins.scheduler.flow_multistep:build"),
                          "diffusers' UniPC multistep solver on the rectified-flow ODE (1 evaluation per step)")]
