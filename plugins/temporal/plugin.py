"""Registers the built-in temporal modules (spec §2)."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def temporal_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no component module (issue 17.8).
    from memo_zoo_plugins.temporal import configs

    return [
        ComponentSpec("linear_memory", configs.LinearMemoryConfig,
                      lazy("memo_zoo_plugins.temporal.linear_memory:build"),
                      "MEMO: linear attention over the clip + decayed motion memory, constant cost (T1-T6)"),
        ComponentSpec("self_attention", configs.SelfAttentionConfig,
                      lazy("memo_zoo_plugins.temporal.self_attention:build"),
                      "baseline: softmax attention over the last N motion frames + the clip (T7)"),
        ComponentSpec("none", configs.NoTemporalConfig, lazy("memo_zoo_plugins.temporal.identity:build"),
                      "no temporal mixing (ablation floor)"),
        ComponentSpec("motion_module", configs.MotionModuleConfig, lazy("memo_zoo_plugins.temporal.motion_module:build"),
                      "the released MEMO motion module: GroupNorm, memory linear attentions, GEGLU; loads the "
                      "authors' checkpoint (T1-T6, §10)"),
    ]
