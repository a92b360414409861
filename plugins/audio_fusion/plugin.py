"""Registers the built-in audio modules (spec §3)."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def audio_fusion_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no component module (issue 17.8).
    from memo_zoo_plugins.audio_fusion import configs

    return [
        ComponentSpec("multimodal_attention", configs.MultimodalAttentionConfig,
                      lazy("memo_zoo_plugins.audio_fusion.multimodal_attention:build"),
                      "MEMO: joint attention over [video ; audio] tokens with Emo-AdaNorm (E1, E3)"),
        ComponentSpec("cross_attention", configs.CrossAttentionFusionConfig,
                      lazy("memo_zoo_plugins.audio_fusion.cross_attention:build"),
                      "baseline: video tokens query the audio tokens, optional Emo-AdaNorm (E2)"),
        ComponentSpec("none", configs.NoFusionConfig, lazy("memo_zoo_plugins.audio_fusion.identity:build"),
                      "no audio conditioning (ablation floor)"),
        ComponentSpec("joint_audio", configs.JointAudioConfig, lazy("memo_zoo_plugins.audio_fusion.joint_audio:build"),
                      "the released MEMO audio module: per-stream self-attention, joint attention, GEGLU, "
                      "Emo-AdaLN (E1, E3, §10)"),
    ]
