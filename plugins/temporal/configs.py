"""Options of the built-in temporal components (spec T1-T7): pydantic only, no torch.

``plugin.py`` registers these without importing the components, so ``memo-zoo ls``, ``validate``
and ``schema`` never import torch (issue 17.8). Each component module imports its config from here,
so the old import paths (``memo_zoo_plugins.temporal.linear_memory.LinearMemoryConfig``, ...) stay.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FrameNormOptions(BaseModel):
    """Normalisation applied to the features before the q/k/v projections (shared config fields)."""

    model_config = ConfigDict(extra="forbid")

    norm: Literal["layer", "group"] = Field(
        "layer",
        description=(
            "'layer': LayerNorm over channels of each token (any channel count, purely per-frame); "
            "'group': GroupNorm over (channels, H, W) of each frame, as AnimateDiff motion modules do."
        ),
    )
    norm_groups: int = Field(32, ge=1, description="Groups of the GroupNorm when norm='group'.")


class FrameAttentionOptions(FrameNormOptions):
    """Shared config fields of the attention-style temporal components (T1, T7)."""

    heads: int = Field(8, ge=1, description="Attention heads; channels must be divisible by it.")


class LinearMemoryConfig(FrameAttentionOptions):
    """Options of the ``linear_memory`` temporal component (spec T1-T6, §10)."""

    gamma: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Frame-level decay of the motion memory (T4). 0 keeps no memory (property (c)).",
    )
    feature_map: Literal["softmax", "released"] = Field(
        "softmax",
        description=(
            "phi of T1. 'softmax': softmax over the feature dim of each head for q and k (paper). "
            "'released': q softmax over each head's channels, k softmax over the frame axis of its "
            "clip (or of its batch of motion frames), as in the authors' code (§10)."
        ),
    )
    update: Literal["paper", "released"] = Field(
        "paper",
        description=(
            "Memory update. 'paper' (T4): M <- gamma^a M + sum_k gamma^k phi(K_k) V_k^T, k=1 the "
            "newest of the a new frames. 'released' (§10): M <- gamma^S M + sum_k gamma^(k-1) "
            "phi(K_k) V_k^T with S = released_decay_frames whatever a is."
        ),
    )
    released_decay_frames: int = Field(
        16,
        ge=0,
        description="S of update='released': the decay exponent the released code hard-codes (16).",
    )
    eps: float = Field(
        1e-6,
        ge=0.0,
        description="Added to the T3 denominator; guards only against float underflow of phi.",
    )


class SelfAttentionConfig(FrameAttentionOptions):
    """Options of the ``self_attention`` temporal component (spec T7)."""

    motion_frames: int = Field(
        4, ge=0, description="N: how many of the latest motion frames are attended to (2-4 in Hallo/EMO)."
    )
    max_positions: int = Field(
        32,
        ge=1,
        description="Length of the sinusoidal frame-position table; must cover N + frames per clip.",
    )

    @model_validator(mode="after")
    def _positions_cover_memory(self) -> "SelfAttentionConfig":
        if self.motion_frames >= self.max_positions:
            raise ValueError(
                f"max_positions ({self.max_positions}) must exceed motion_frames ({self.motion_frames}) "
                "to leave room for the clip's own frames"
            )
        return self


class NoTemporalConfig(BaseModel):
    """The ``none`` temporal component takes no options."""

    model_config = ConfigDict(extra="forbid")


class MotionModuleConfig(BaseModel):
    """Options of the ``motion_module`` temporal component: the released motion_module_kwargs (§10).

    Defaults are the released checkpoint's (8 heads, 1 transformer block, 2 temporal self-attention
    blocks, positions on with 32 slots, dim_div 1, decay 0.9 of the released processor).
    """

    model_config = ConfigDict(extra="forbid")

    heads: int = Field(8, ge=1, description="Attention heads (released num_attention_heads, Q16).")
    decay: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Memory decay gamma (T4); the release hard-codes 0.9 in its processor (Q3).",
    )
    pe: bool = Field(
        True, description="Add sinusoidal frame positions to the normed current frames (temporal_position_encoding)."
    )
    pe_max_len: int = Field(
        32,
        ge=1,
        description="Rows of the saved position table pos_encoder.pe; the most frames a clip may have "
        "(temporal_position_encoding_max_len).",
    )
    norm_groups: int = Field(
        32, ge=1, description="Groups of the input GroupNorm; the release hard-codes 32, not the UNet's (Q9)."
    )
    attention_blocks: int = Field(
        2,
        ge=1,
        description="Memory linear-attention blocks per transformer block (len(attention_block_types), "
        "all 'Temporal_Self').",
    )
    transformer_blocks: int = Field(1, ge=1, description="Transformer blocks (num_transformer_block).")
    ff_mult: int = Field(4, ge=1, description="GEGLU hidden width as a multiple of the inner width (diffusers' 4).")
    dim_div: int = Field(
        1,
        ge=1,
        description="Head width is channels // heads // dim_div (temporal_attention_dim_div); inner = heads * it.",
    )
    memory_gradients: bool = Field(
        False,
        description="Let gradients flow through update_context into the motion path (T5). False: the "
        "release's no_grad motion path, the memory is a constant to training.",
    )
