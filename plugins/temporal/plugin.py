"""Registers the built-in temporal modules (spec §2)."""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def temporal_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.temporal import identity, linear_memory, self_attention

    return [
        ComponentSpec("linear_memory", linear_memory.LinearMemoryConfig, linear_memory.build,
                      "MEMO: linear attention over the clip + decayed motion memory, constant cost (T1-T6)"),
        ComponentSpec("self_attention", self_attention.SelfAttentionConfig, self_attention.build,
                      "baseline: softmax attention over the last N motion frames + the clip (T7)"),
        ComponentSpec("none", identity.NoTemporalConfig, identity.build,
                      "no temporal mixing (ablation floor)"),
    ]
