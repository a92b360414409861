"""Registers the built-in dataset readers of spec §11 in the ``dataset`` slot."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import lazy


@hookimpl
def dataset_components() -> list[ComponentSpec]:
    # Torch-free configs, imported here so that importing this plugin (all `memo-zoo --help` does)
    # builds no pydantic model; the factories are lazy references, so registering (all `ls`,
    # `validate` and `schema` need) imports no component module (issue 17.8).
    from memo_zoo_plugins.datasets.readers import configs

    return [
        ComponentSpec("memo_layout", configs.MemoLayoutConfig,
                      lazy("memo_zoo_plugins.datasets.readers.memo_layout:build"),
                      "MEMO's layout: data/video + data/embedding/<kind>/<stem>.pt + metadata.jsonl"),
        ComponentSpec("hallo_layout", configs.HalloLayoutConfig,
                      lazy("memo_zoo_plugins.datasets.readers.hallo:build"),
                      "Hallo/Hallo2 preprocessed data: videos/, images/, audios/, masks, face_emb/, audio_emb/"),
        ComponentSpec("video_folder", configs.VideoFolderConfig,
                      lazy("memo_zoo_plugins.datasets.readers.video_folder:build"),
                      "a plain folder of videos with muxed audio (glob pattern, optionally recursive)"),
        ComponentSpec("hdtf", configs.HdtfConfig, lazy("memo_zoo_plugins.datasets.readers.hdtf:build"),
                      "HDTF clips <subset>_<name>_<idx>.mp4; speaker = name"),
        ComponentSpec("voxceleb2", configs.VoxCeleb2Config,
                      lazy("memo_zoo_plugins.datasets.readers.voxceleb2:build"),
                      "VoxCeleb2 dev|test/mp4/idXXXXX/<yt>/NNNNN.mp4 with the parallel aac/ tree"),
        ComponentSpec("mead", configs.MeadConfig, lazy("memo_zoo_plugins.datasets.readers.mead:build"),
                      "MEAD actors/views/emotions/levels with separate .m4a audio; labels -> 8 classes"),
        ComponentSpec("celebv_hq", configs.CelebVHQConfig,
                      lazy("memo_zoo_plugins.datasets.readers.celebv_hq:build"),
                      "CelebV-HQ celebvhq_info.json + processed clips; emotion labels -> 8 classes"),
    ]
