"""Registers the built-in audio modules (spec §3)."""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def audio_fusion_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.audio_fusion import cross_attention, identity, multimodal_attention

    return [
        ComponentSpec("multimodal_attention", multimodal_attention.MultimodalAttentionConfig,
                      multimodal_attention.build,
                      "MEMO: joint attention over [video ; audio] tokens with Emo-AdaNorm (E1, E3)"),
        ComponentSpec("cross_attention", cross_attention.CrossAttentionFusionConfig, cross_attention.build,
                      "baseline: video tokens query the audio tokens, optional Emo-AdaNorm (E2)"),
        ComponentSpec("none", identity.NoFusionConfig, identity.build, "no audio conditioning (ablation floor)"),
    ]
