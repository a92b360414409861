"""Options of the built-in audio encoders (spec A5): pydantic only, no torch.

``plugin.py`` registers these without importing the encoders, so ``memo-zoo ls``, ``validate``
and ``schema`` never import torch (issue 17.8). Each encoder module imports its config from here,
so the old import paths (``memo_zoo_plugins.audio_encoder.log_mel.LogMelConfig``, ...) stay.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field
Padding = Literal["replicate", "zero"]


class LogMelConfig(BaseModel):
    """Trainable log-mel audio encoder (CPU default)."""

    model_config = ConfigDict(extra="forbid")

    token_count: int = Field(32, ge=1, description="audio tokens per video frame, T (spec A5: 32)")
    token_dim: int = Field(16, ge=1, description="width of each token, A (must equal the network's audio_dim; "
                                                 "tiny: 16)")
    n_mels: int = Field(40, ge=8, le=128, description="mel bands of the spectrogram (16 kHz, 0-8 kHz)")
    sub_frames: int = Field(4, ge=1, le=16, description="spectra sampled per video frame (4 at 25 fps = every 10 ms)")
    window: int = Field(2, ge=0, le=16, description="video frames of context either side of a frame (spec A5: 2)")
    padding: Padding = Field("replicate", description="beyond the audio's ends: repeat the edge frame or use zeros")
    hidden: int = Field(64, ge=1, description="hidden width of the projection MLP")


class Wav2Vec2EncoderConfig(BaseModel):
    """Frozen Wav2Vec 2.0 features + trainable projector (paper / released audio encoder)."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field(..., description="Wav2Vec2 folder (config.json + weights): a path, or a name under "
                                          "MEMO_ZOO_WEIGHTS_DIR, e.g. 'wav2vec2-base-960h' (§10)")
    token_count: int = Field(32, ge=1, description="audio tokens per video frame, T (spec A5: 32)")
    token_dim: int = Field(768, ge=1, description="width of each token, A (must equal the network's audio_dim; §10: "
                                                  "768)")
    window: int = Field(2, ge=0, le=16, description="video frames of context either side of a frame (spec A5: 2)")
    layers: Union[Literal["all"], list[int]] = Field(
        "all", description="hidden states to stack: 'all' = every transformer layer (§10: 12); or indices where 0 is "
                           "the input of the first layer and L the output of the last")
    resample: Literal["after", "before"] = Field(
        "after", description="interpolate to the video fps after the transformer (paper) or before it, on the CNN "
                             "features (released code)")
    normalize: bool = Field(True, description="zero-mean unit-variance waveform per clip, as wav2vec2-base-960h's "
                                              "feature extractor does (do_normalize)")
    padding: Padding = Field("replicate", description="beyond the audio's ends: repeat the edge frame or use zeros")
    hidden: int = Field(512, ge=1, description="hidden width of the projector MLP (released code: 512)")
    projector: str | None = Field(
        None, description="take the projector's weights from a released MEMO checkpoint: its folder, or a hub id "
                          "such as 'memoavatar/memo' already in the local Hugging Face cache (its audio_proj part); "
                          "token_count, token_dim, window, layers and hidden must match it. null = a new projector")
