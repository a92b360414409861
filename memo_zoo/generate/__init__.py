"""Long talking-video generation with a trained MEMO network (spec §6 I1-I4, T6, E5).

``GenerateConfig`` (``config``) holds the options of ``memo-zoo generate`` and ``task: {kind:
generate}``; ``load_generator_model`` and ``generate_video`` (``pipeline``) do the work.
"""

from memo_zoo.generate.config import EmotionSegment, GenerateConfig, GuidanceConfig

__all__ = ["EmotionSegment", "GenerateConfig", "GuidanceConfig"]
