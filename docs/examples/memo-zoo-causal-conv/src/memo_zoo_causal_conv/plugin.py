"""Hook implementations: what this package adds to memo-zoo."""

from memo_zoo.plugin import ComponentSpec, hookimpl

from memo_zoo_causal_conv.module import CausalConvConfig, build


@hookimpl
def temporal_components() -> list[ComponentSpec]:
    return [ComponentSpec(
        name="causal_conv",
        config=CausalConvConfig,
        factory=build,
        summary="depthwise causal convolution over the last kernel_size frames (example plugin)",
    )]
