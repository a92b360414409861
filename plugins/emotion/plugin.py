"""Registers the built-in emotion detectors."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo_plugins.emotion import fixed


@hookimpl
def emotion_detector_components() -> list[ComponentSpec]:
    return [ComponentSpec("fixed", fixed.FixedEmotionConfig, fixed.build,
                          "one manual emotion label for every frame (spec E4 override)")]
