"""Options of talking_world, the synthetic default dataset (issue 4): what the generator makes
(``WorldConfig``) and which split the dataset lists (``TalkingWorldConfig``). Pydantic only, no
numpy, torch or espeak.

``plugin.py`` registers the dataset without importing the generator, so ``memo-zoo ls``,
``validate`` and ``schema`` import none of it (issue 17.8). ``world`` and ``dataset`` import these
from here, so the old import paths (``...talking_world.world.WorldConfig``, ``api.WorldConfig``)
stay; the measurer's configs (``measure.configs``) nest ``WorldConfig`` from here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from memo_zoo.emotion import PAPER_LABELS

from .voices import VOICES

IDENTITY_STRIDE = 6000  # identity seeds of world seed s: s * stride + i (block-aligned, see identity.py)
MAX_IDENTITIES = IDENTITY_STRIDE


class WorldConfig(BaseModel):
    """What talking_world generates. Every field has a default; building the config touches no
    file (``root`` None is resolved only when :func:`generate` runs)."""

    model_config = ConfigDict(extra="forbid")

    root: Path | None = Field(
        None, description="folder to write the world to; null = <settings.cache_dir>/talking_world/<short hash "
                          "of the generation fields>, so each config has its own cached world")
    identities: int = Field(12, ge=1, le=MAX_IDENTITIES,
                            description="number of synthetic people (rendered faces, each with one voice)")
    clips_per_identity: int = Field(4, ge=0, description="regular clips per identity")
    seconds: tuple[float, float] = Field(
        (4.0, 12.0), description="[min, max] length of a regular clip in seconds (minutes allowed); the target is "
                                 "drawn uniformly, whole sentences are spoken, a clip is cut at max")
    long_clips: int = Field(
        2, ge=0, description="extra long clips (for memory / identity-over-time experiments), alternating between "
                             "train and test identities")
    long_seconds: float = Field(60.0, gt=0, le=3600, description="length of each long clip in seconds")
    fps: Literal[25, 30] = Field(25, description="video frame rate (MEMO: 30; HDTF / Hallo: 25)")
    size: int = Field(64, ge=32, le=256, description="frame width = height in pixels (even, for H.264)")
    emotions: list[str] = Field(
        default_factory=lambda: list(PAPER_LABELS),
        description="emotion labels to speak and show, a subset of the paper's 8 (spec E4)")
    emotion_change_probability: float = Field(
        0.3, ge=0.0, le=1.0, description="chance that a clip changes emotion within itself (one change per ~10 s)")
    voices: list[str] = Field(
        default_factory=lambda: list(VOICES),
        description=f"espeak voices to draw each identity's voice from; of {', '.join(VOICES)}")
    test_identities: int = Field(
        2, ge=0, description="held-out identities (the last ones): the train/test split is by speaker")
    photo_fraction: float = Field(
        0.0, ge=0.0, le=0.9, description="fraction of the regular clips on the real-photo tier (one real portrait, "
                                         "speaker 'tw_photo', added on top of the identities' clips; needs "
                                         "scikit-image)")
    photo_split: Literal["train", "test"] = Field(
        "train", description="split of the real-photo speaker (one person cannot be on both sides of a speaker split)")
    prosody_mismatch: float = Field(
        0.0, ge=0.0, le=1.0,
        description="share of the train speakers' regular clips whose voice speaks every line with another "
                    "emotion's prosody than the face shows (one shift of the emotion order per clip; the truth "
                    "and the clip's label stay the face's). In the default world (0) voice and face always "
                    "agree, so a network can read the emotion from the audio and ignore the label, and a "
                    "manual label does not override the audio's (docs/emotion_diagnosis.md); held-out "
                    "speakers always match")
    workers: int = Field(2, ge=1, le=256, description="worker processes (output does not depend on it)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="master seed: same config and seed -> identical files")

    @field_validator("size")
    @classmethod
    def _even(cls, size: int) -> int:
        if size % 2:
            raise ValueError(f"size must be even (H.264 4:2:0 needs even width and height), got {size}")
        return size

    @field_validator("seconds")
    @classmethod
    def _ordered(cls, seconds: tuple[float, float]) -> tuple[float, float]:
        lo, hi = seconds
        if not (0.2 <= lo <= hi <= 3600):
            raise ValueError(f"seconds must be [min, max] with 0.2 <= min <= max <= 3600, got {list(seconds)}")
        return seconds

    @field_validator("emotions")
    @classmethod
    def _known_emotions(cls, emotions: list[str]) -> list[str]:
        unknown = [e for e in emotions if e not in PAPER_LABELS]
        if unknown or not emotions or len(set(emotions)) != len(emotions):
            raise ValueError(f"emotions must be distinct labels of {', '.join(PAPER_LABELS)} (spec E4), "
                             f"at least one; got {emotions}")
        return emotions

    @field_validator("voices")
    @classmethod
    def _known_voices(cls, voices: list[str]) -> list[str]:
        unknown = [v for v in voices if v not in VOICES]
        if unknown or not voices or len(set(voices)) != len(voices):
            raise ValueError(f"voices must be distinct names of {', '.join(VOICES)}, at least one; got {voices}")
        return voices

    @model_serializer(mode="wrap")
    def _without_later_defaults(self, handler):
        # Fields added after worlds were first cached are left out while at their no-op value: the
        # world's hash and every training key that holds this config stay as they were.
        data = handler(self)
        if isinstance(data, dict) and not data.get("prosody_mismatch", 1.0):
            data.pop("prosody_mismatch")
        return data

    @model_validator(mode="after")
    def _train_left(self) -> "WorldConfig":
        if self.test_identities >= self.identities:
            raise ValueError(f"test_identities ({self.test_identities}) must leave at least one of the "
                             f"{self.identities} identities for training")
        return self


class TalkingWorldConfig(WorldConfig):
    """talking_world: the generator's options plus which split to list (by speaker)."""

    split: Literal["train", "test", "all"] = Field(
        "train", description="clips to list: train identities, held-out test identities, or all")
