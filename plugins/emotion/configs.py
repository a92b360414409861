"""Options of the built-in emotion detectors and of task train_emotion (spec E4, E5, D1, D2):
pydantic only, no torch.

``plugin.py`` registers these without importing the detectors, so ``memo-zoo ls``, ``validate``
and ``schema`` never import torch (issue 17.8). Each component module imports its config from
here, so the old import paths (``memo_zoo_plugins.emotion.prosody.ProsodyMLPConfig``, ...) stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from memo_zoo.data.rates import AUDIO_RATE
from memo_zoo.emotion import LABEL_SETS, WINDOW_SECONDS, LabelSet
from memo_zoo_plugins.emotion.labels import CORPORA

PITCH_FRAME = 640  # samples of a pitch frame, 40 ms: two periods of a 50 Hz voice (prosody.py)
DEFAULT_WIDTHS = (256, 256, 128, 64)  # 4 hidden layers + the output layer = D1's 5 layers


class FixedEmotionConfig(BaseModel):
    """The same emotion label for every frame."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field("neutral", description="emotion name from the label set")
    label_set: LabelSet = Field("paper", description="'paper' (8 classes) or 'emotion2vec' (9)")

    @model_validator(mode="after")
    def _label_in_set(self) -> "FixedEmotionConfig":
        if self.label not in LABEL_SETS[self.label_set]:
            raise ValueError(f"label {self.label!r} is not in the {self.label_set} label set: "
                             f"{', '.join(LABEL_SETS[self.label_set])}")
        return self


class HeadOptions(BaseModel):
    """Head sizes and E5 framing options shared by every backbone + MLP head detector."""

    model_config = ConfigDict(extra="forbid")

    label_set: LabelSet = Field("paper", description="'paper' (8 classes, spec E4) or 'emotion2vec' (9, spec §10); "
                                                     "a checkpoint with another class count is refused")
    widths: tuple[int, ...] = Field(DEFAULT_WIDTHS, description="hidden widths of the MLP head; 4 widths = the "
                                                                "5 linear layers of spec D1 (used when training)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout after each hidden layer (training only)")
    window_seconds: float = Field(WINDOW_SECONDS, gt=0.0, le=30.0,
                                  description="audio window per video frame, centred on it (spec E5: 3 s)")
    stride: int = Field(1, ge=1, description="classify one frame in `stride` (the middle of each block) and hold "
                                             "its label over the block; 1 = every frame (spec E5)")
    silence_db: float | None = Field(-55.0, description="windows quieter than this RMS level (dBFS) are silence; "
                                                        "null = classify them like any other")
    silence_label: str | None = Field("neutral", description="label of silent windows (no voice, no vocal "
                                                             "emotion); null = let the classifier decide")

    @field_validator("widths")
    @classmethod
    def _widths(cls, widths: tuple[int, ...]) -> tuple[int, ...]:
        if not 1 <= len(widths) <= 8 or any(w < 1 for w in widths):
            raise ValueError(f"widths must be 1 to 8 positive sizes, got {list(widths)}")
        return widths

    @model_validator(mode="after")
    def _silence_label_in_set(self) -> "HeadOptions":
        if self.silence_label is not None and self.silence_label not in LABEL_SETS[self.label_set]:
            raise ValueError(f"silence_label {self.silence_label!r} is not in the {self.label_set} label set: "
                             f"{', '.join(LABEL_SETS[self.label_set])}")
        return self


class ProsodyFeatures(BaseModel):
    """Frame-level analysis settings of the prosody backbone (a checkpoint stores the ones it was trained on)."""

    model_config = ConfigDict(extra="forbid")

    n_mels: int = Field(16, ge=4, le=128, description="log-mel bands (16: more bands fit the training speakers' "
                                                       "timbre and generalise worse to new speakers)")
    fmin: float = Field(60.0, ge=0.0, description="lowest mel band edge, Hz")
    fmax: float = Field(7600.0, le=AUDIO_RATE / 2, description="highest mel band edge, Hz")
    floor_db: float = Field(-80.0, description="log-mel and loudness floor, dB (digital silence reads as this)")
    f0_min: float = Field(60.0, gt=20.0, description="lowest pitch searched, Hz")
    f0_max: float = Field(500.0, le=1000.0, description="highest pitch searched, Hz")
    voicing_threshold: float = Field(0.45, gt=0.0, lt=1.0,
                                     description="normalised autocorrelation peak at or above which a frame is voiced")
    voicing_db: float = Field(-50.0, description="frames quieter than this (dBFS) are never voiced")

    @model_validator(mode="after")
    def _ranges(self) -> "ProsodyFeatures":
        if not self.fmin < self.fmax:
            raise ValueError(f"fmin ({self.fmin}) must be below fmax ({self.fmax})")
        if not self.f0_min < self.f0_max:
            raise ValueError(f"f0_min ({self.f0_min}) must be below f0_max ({self.f0_max})")
        if AUDIO_RATE / self.f0_min >= PITCH_FRAME - 2:
            raise ValueError(f"f0_min {self.f0_min} Hz: its period does not fit a "
                             f"{PITCH_FRAME / AUDIO_RATE * 1000:.0f} "
                             "ms pitch frame; use >= 26 Hz")
        return self


class ProsodyMLPConfig(HeadOptions):
    """Log-mel / pitch / energy statistics + the 5-layer MLP head (a trained `checkpoint`)."""

    checkpoint: str = Field(
        ..., description="trained head (.safetensors; a path, or a name in MEMO_ZOO_WEIGHTS_DIR); task train_emotion "
                         "writes it here when the recipe trains this detector. Required: an untrained detector "
                         "would label arbitrarily")
    features: ProsodyFeatures = Field(
        default_factory=ProsodyFeatures,
        description="frame analysis settings for training; a checkpoint carries its own (an explicit, different "
                    "value is an error)")


class Emotion2vecMLPConfig(HeadOptions):
    """Frozen emotion2vec (funasr, local folder) + the 5-layer MLP head (spec D1)."""

    backbone: str = Field(..., description="emotion2vec model folder (config.yaml, model.pt, tokens.txt), base or "
                                           "large; a path, or a name in MEMO_ZOO_WEIGHTS_DIR. Never downloaded")
    head: str = Field(..., description="trained MLP head (.safetensors) for this backbone; train_emotion writes "
                                       "it here when the recipe trains this detector")
    device: str = Field("auto", description="'auto' (MEMO_ZOO_DEVICE, else cuda if available), 'cpu', 'cuda', ...")
    batch_size: int = Field(16, ge=1, description="windows per emotion2vec forward pass")


class CorpusSource(BaseModel):
    """An emotion corpus folder read by its file naming (plugins/emotion/labels.py)."""

    model_config = ConfigDict(extra="forbid")

    corpus: Literal[CORPORA] = Field(..., description=f"naming scheme: {', '.join(CORPORA)}")
    root: Path = Field(..., description="corpus folder (relative to the working directory)")
    name: Optional[str] = Field(None, description="dataset name in the accuracy table; default: the corpus")


class TrainEmotionConfig(BaseModel):
    """Train the recipe's emotion_detector head: CE + supervised contrastive, per-dataset 3:1 split (spec D2)."""

    model_config = ConfigDict(extra="forbid")

    corpora: list[CorpusSource] = Field(default_factory=list, description="emotion corpora to train on, besides "
                                                                          "data.dataset")
    use_dataset: bool = Field(True, description="also train on the recipe's data.dataset when it is set")
    out: Optional[Path] = Field(None, description="where to save the trained head (.safetensors + .json); default: "
                                                  "the detector's checkpoint / head path")
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="share of speakers (else clips) held out per "
                                                                   "dataset (spec D2: 3:1)")
    split_seed: int = Field(0, ge=0, description="seed of the speaker / clip split")
    segment_seconds: float = Field(30.0, gt=0.0, description="longer clips are cut into segments of this length "
                                                             "(spec D2: 30 s)")
    window_stride: float = Field(0.25, gt=0.0, description="seconds between training windows within a segment")
    eval_fps: float = Field(25.0, gt=0.0, description="video frame rate for E5 evaluation of clips without one")
    max_clips: Optional[int] = Field(None, ge=1, description="use only the first N clips of each dataset")
    epochs: int = Field(40, ge=1, description="passes over the training windows")
    batch_size: int = Field(128, ge=2, description="windows per step")
    lr: float = Field(2e-3, gt=0.0, description="AdamW peak learning rate (cosine decay to 0)")
    weight_decay: float = Field(1e-4, ge=0.0, description="AdamW weight decay")
    contrastive_weight: float = Field(0.1, ge=0.0, description="weight of the supervised contrastive loss on the "
                                                               "head embedding (spec D2); 0 = cross-entropy only")
    temperature: float = Field(0.1, gt=0.0, description="temperature of the contrastive loss")
    grad_clip: float = Field(1.0, gt=0.0, description="gradient l2-norm clip (spec D2: 1.0)")
    balance_classes: bool = Field(True, description="weight the cross-entropy by inverse class frequency")
    eval_every: int = Field(5, ge=1, description="epochs between held-out window evaluations (loss curves)")


class ReleasedEmotionConfig(BaseModel):
    """emotion2vec_plus_large (funasr, local folder) + the released MEMO emotion classifier (§10)."""

    model_config = ConfigDict(extra="forbid")

    # A literal, not folder.DEFAULT_HUB_ID: this config must stay torch-free (plugins/emotion/configs.py style).
    release: str = Field("memoavatar/memo", description="released MEMO checkpoint whose misc/audio_emotion_classifier "
                                                     "is used: a folder, or a hub id already in the local Hugging "
                                                     "Face cache. Never downloaded")
    backbone: str = Field(..., description="emotion2vec_plus_large funasr folder (config.yaml, model.pt): a path, or "
                                           "a name in MEMO_ZOO_WEIGHTS_DIR. The classifier takes its 1024-d features")
    device: str = Field("auto", description="'auto' (MEMO_ZOO_DEVICE, else cuda if available), 'cpu', 'cuda', ...")
    batch_size: int = Field(16, ge=1, description="windows per emotion2vec forward pass (windows of one length "
                                                  "are batched; 1 = one window per pass, as the released code)")
