"""Registers the built-in stages of the data pipeline (spec §7), in the order the paper runs them."""

from memo_zoo.plugin import ComponentSpec, hookimpl


@hookimpl
def preprocess_components() -> list[ComponentSpec]:
    # Imported here, not at the top: importing this plugin (all `memo-zoo --help` does) must not
    # import torch; the component modules do.
    from memo_zoo_plugins.preprocess import face_crop, lip_sync, quality, resize, scene_split

    return [
        ComponentSpec("scene_split", scene_split.SceneSplitConfig, scene_split.build,
                      "cut clips at scene changes (PySceneDetect) and into pieces under max_seconds"),
        ComponentSpec("face_crop", face_crop.FaceCropConfig, face_crop.build,
                      "drop no-face / multi-face / partial-face clips; crop a fixed square around the face"),
        ComponentSpec("quality_filter", quality.QualityConfig, quality.build,
                      "drop clips whose first frame scores under the image-quality threshold (0-100)"),
        ComponentSpec("lip_sync_filter", lip_sync.LipSyncConfig, lip_sync.build,
                      "drop clips whose lip-sync confidence is under the threshold"),
        ComponentSpec("resize", resize.ResizeConfig, resize.build,
                      "centre-crop to a square and resize (optionally resample the frame rate)"),
    ]
