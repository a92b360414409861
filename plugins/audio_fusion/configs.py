"""Options of the built-in audio-fusion components (spec E1-E3): pydantic only, no torch.

``plugin.py`` registers these without importing the components, so ``memo-zoo ls``, ``validate``
and ``schema`` never import torch (issue 17.8). Each component module imports its config from here,
so the old import paths (``memo_zoo_plugins.audio_fusion.emo_adanorm.EmotionOptions``, ...) stay.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EmotionOptions(BaseModel):
    """Emotion conditioning of an audio-fusion component's norms (spec E3, E4, §10)."""

    model_config = ConfigDict(extra="forbid")

    emotion_conditioning: bool = Field(
        True, description="Use Emo-AdaNorm (E3) for the norms; False uses plain LayerNorm and ignores labels."
    )
    num_emotion_classes: int = Field(
        8, ge=1, description="Emotion label set size: 8 in the paper (E4), 9 in the released classifier (§10)."
    )
    emotion_embedding_dim: int = Field(
        128, ge=1, description="Width of the learned emotion embedding e (the paper does not give it)."
    )


class CrossAttentionFusionConfig(EmotionOptions):
    """Options of the ``cross_attention`` audio-fusion component (spec E2, E3)."""

    heads: int = Field(8, ge=1, description="Attention heads; the video channels must be divisible by it.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Attention-probability dropout while training.")


class MultimodalAttentionConfig(EmotionOptions):
    """Options of the ``multimodal_attention`` audio-fusion component (spec E1, E3)."""

    heads: int = Field(8, ge=1, description="Attention heads; the video channels must be divisible by it.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Attention-probability dropout while training.")


class NoFusionConfig(BaseModel):
    """The ``none`` audio-fusion component takes no options."""

    model_config = ConfigDict(extra="forbid")


class JointAudioConfig(BaseModel):
    """Options of the released MEMO audio module (``joint_audio``; spec E1, E3, §10).

    ``heads`` and ``norm_groups`` are the fallbacks for a host that does not pass them: the
    released UNet decides both per site (its ``attention_head_dim`` of the level and its
    ``norm_num_groups``) and hands them to the factory as optional build args
    (``memo_zoo.slots.audio_fusion``), which take precedence.
    """

    model_config = ConfigDict(extra="forbid")

    heads: int = Field(
        8, ge=1,
        description="Attention heads where the host passes none (the released UNet passes its per-level "
                    "attention_head_dim, 8 at SD1.5 size); head width = inner width // heads.")
    norm_groups: int = Field(
        32, ge=1,
        description="Groups of the input GroupNorm where the host passes none (the released UNet passes its "
                    "norm_num_groups: 32 at full size); the site width must be divisible by it.")
    num_emotion_classes: int = Field(
        9, ge=1,
        description="Emotion classes of the Emo-AdaLN tables (9 in the released classifier, hard-coded there).")
    null_emotion_row: bool = Field(
        True,
        description="Add the 'no emotion' row (index num_emotion_classes) to every emotion table; the release "
                    "adds it when emo_drop_rate > 0 (0.05 in its checkpoint). Without it emotion=None is an error.")
    double_audio_residual: bool = Field(
        False,
        description="Return block(audio) + audio as the audio stream, counting the input twice, as the released "
                    "code does (golden README Q7); False returns block(audio), whose residuals already carry "
                    "the input.")
    group_norm_eps: float = Field(1e-6, gt=0.0, description="Epsilon of the input GroupNorm (1e-6 in the release).")
    layer_norm_eps: float = Field(
        1e-5, gt=0.0, description="Epsilon of every LayerNorm, Emo-AdaLN included (1e-5 in the release).")
    ff_mult: int = Field(4, ge=1, description="Hidden width of the GEGLU feed-forwards, in multiples of their input.")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Dropout after each attention output and inside each feed-forward while training (0 in the "
                    "release).")
