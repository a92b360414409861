"""Registers the built-in stages of the data pipeline (spec §7), in the order the paper runs them."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def preprocess_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no component module (issue 17.8).
    from memo_zoo.perception import configs as perception_configs
    from memo_zoo_plugins.preprocess import configs

    return [
        ComponentSpec("scene_split", configs.SceneSplitConfig,
                      lazy("memo_zoo_plugins.preprocess.scene_split:build"),
                      "cut clips at scene changes (PySceneDetect) and into pieces under max_seconds"),
        ComponentSpec("face_crop", configs.FaceCropConfig, lazy("memo_zoo_plugins.preprocess.face_crop:build"),
                      "drop no-face / multi-face / partial-face clips; crop a fixed square around the face"),
        ComponentSpec("quality_filter", configs.QualityConfig, lazy("memo_zoo_plugins.preprocess.quality:build"),
                      "drop clips whose first frame scores under the image-quality threshold (0-100)"),
        ComponentSpec("lip_sync_filter", configs.LipSyncConfig, lazy("memo_zoo_plugins.preprocess.lip_sync:build"),
                      "drop clips whose lip-sync confidence is under the threshold"),
        ComponentSpec("resize", configs.ResizeConfig, lazy("memo_zoo_plugins.preprocess.resize:build"),
                      "centre-crop to a square and resize (optionally resample the frame rate)"),
        ComponentSpec("vocal_separation", perception_configs.VocalSeparatorConfig,
                      lazy("memo_zoo_plugins.preprocess.vocal_separation:build"),
                      "replace a clip's audio by its MDX-Net vocals (Kim_Vocal_2.onnx in ONNX Runtime), as the "
                      "release's data preparation does"),
        ComponentSpec("voice_activity", configs.VoiceActivityStageConfig,
                      lazy("memo_zoo_plugins.preprocess.voice_activity:build"),
                      "drop clips with too little speech, or trim them to their speech span (Silero VAD "
                      "from the silero-vad package)"),
    ]
