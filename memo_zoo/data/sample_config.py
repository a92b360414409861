"""``SampleConfig``: how MEMO's training samples are cut from clips (``memo_zoo.data.samples``).

Pydantic only, no torch or numpy, so that the training configs that nest it (``TrainConfig``,
read by ``memo-zoo ls``, ``validate`` and ``schema``) import no torch (issue 17.8);
``memo_zoo.data.samples`` imports it from here, so its old import path stays.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memo_zoo.emotion import LabelSet


class SampleConfig(BaseModel):
    """How training samples are cut from clips (spec A5, T5, L4, E4, D3)."""

    model_config = ConfigDict(extra="forbid")

    fps: float = Field(25.0, gt=0, description="frame rate the clips are resampled to before sampling")
    size: int = Field(64, ge=2, description="side of the square frames, in pixels (short side scaled, centre crop)")
    clip_frames: int = Field(16, ge=1, description="F: frames in the target clip")
    motion_frames: int | list[int] = Field(
        16, description="M: past frames before the target; a list draws one value per sample "
                        "(spec T5: 16, or dynamically from [16, 32, 48])")
    motion_padding: Literal["first_frame", "reference"] = Field(
        "first_frame", description="what fills motion slots before the clip's first frame: the clip's "
                                   "first frame repeated, or the reference image repeated (the released "
                                   "code's first clip, spec §10)")
    audio_window: int = Field(2, ge=0, description="audio context per video frame, in frames each side (spec A5)")
    audio_sample_rate: int = Field(16_000, gt=0, description="audio rate in Hz (spec D3: 16 kHz mono)")
    emotion_decoupling: bool = Field(
        True, description="draw the reference from the same speaker in a different emotion when the "
                          "clips carry speaker and emotion labels (spec L4)")
    motion_decoupling: float = Field(
        0.0, ge=0, le=1,
        description="share of samples whose motion frames are M consecutive frames of the same speaker's clip in "
                    "another emotion instead of the target's own past (when the speaker has one): the memory then "
                    "shows another expression than the target, so only the label tells it (issue 23, "
                    "docs/emotion_diagnosis.md section 11); 0 = always the target's own past (T5)")
    label_set: LabelSet = Field("paper", description="emotion classes the label index refers to (spec E4, §10)")
    samples_per_clip: int = Field(1, ge=1, description="items per clip per epoch (each with its own random start)")
    samples_per_epoch: int | None = Field(
        None, ge=1, description="items per epoch; None = samples_per_clip x number of clips. Item i always "
                                "uses clip i mod number of clips, so clips are covered evenly")
    max_av_mismatch: float = Field(
        0.1, ge=0, description="largest allowed difference in seconds between audio and video length; "
                               "a clip beyond it is skipped with a warning")
    seed: int = Field(0, ge=0, description="seed of every random choice; an item depends on (seed, epoch, index)")

    @field_validator("motion_frames")
    @classmethod
    def _positive_counts(cls, value: int | list[int]) -> int | list[int]:
        counts = [value] if isinstance(value, int) else value
        if not counts:
            raise ValueError("motion_frames needs at least one count")
        if any(count < 1 for count in counts):
            raise ValueError(f"motion frame counts must be >= 1, got {counts}")
        return value

    @property
    def motion_choices(self) -> tuple[int, ...]:
        return (self.motion_frames,) if isinstance(self.motion_frames, int) else tuple(self.motion_frames)

    @property
    def samples_per_frame(self) -> int:
        """P: audio samples per video frame (640 at 16 kHz / 25 fps; 533 at 30 fps, rounded)."""
        return max(1, round(self.audio_sample_rate / self.fps))
