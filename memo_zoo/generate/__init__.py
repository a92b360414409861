"""Long talking-video generation with a trained MEMO network (spec §6 I1-I4, T6, E5).

``GenerateConfig`` (``config``) holds the options of ``memo-zoo generate`` and ``task: {kind:
generate}``; ``load_generator_model`` (``loading``) builds the model once and ``generate_video``
(``pipeline``) runs it, with its steps in ``inputs``, ``emotion``, ``guidance`` and ``sampling``.
"""

from memo_zoo.generate.config import EmotionSegment, GenerateConfig, GuidanceConfig

__all__ = ["EmotionSegment", "GenerateConfig", "GuidanceConfig"]
