"""Registers the built-in dataset readers of spec §11 in the ``dataset`` slot."""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def dataset_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.datasets.readers import celebv_hq, hallo, hdtf, mead, memo_layout, video_folder, voxceleb2

    return [
        ComponentSpec("memo_layout", memo_layout.MemoLayoutConfig, memo_layout.build,
                      "MEMO's layout: data/video + data/embedding/<kind>/<stem>.pt + metadata.jsonl"),
        ComponentSpec("hallo_layout", hallo.HalloLayoutConfig, hallo.build,
                      "Hallo/Hallo2 preprocessed data: videos/, images/, audios/, masks, face_emb/, audio_emb/"),
        ComponentSpec("video_folder", video_folder.VideoFolderConfig, video_folder.build,
                      "a plain folder of videos with muxed audio (glob pattern, optionally recursive)"),
        ComponentSpec("hdtf", hdtf.HdtfConfig, hdtf.build,
                      "HDTF clips <subset>_<name>_<idx>.mp4; speaker = name"),
        ComponentSpec("voxceleb2", voxceleb2.VoxCeleb2Config, voxceleb2.build,
                      "VoxCeleb2 dev|test/mp4/idXXXXX/<yt>/NNNNN.mp4 with the parallel aac/ tree"),
        ComponentSpec("mead", mead.MeadConfig, mead.build,
                      "MEAD actors/views/emotions/levels with separate .m4a audio; labels -> 8 classes"),
        ComponentSpec("celebv_hq", celebv_hq.CelebVHQConfig, celebv_hq.build,
                      "CelebV-HQ celebvhq_info.json + processed clips; emotion labels -> 8 classes"),
    ]
