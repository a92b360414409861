"""The option models of the training's parts that ``TrainConfig`` nests: colour augmentation
(``memo_zoo.train.colour_augment``), motion-frame augmentation (``...motion_augment``) and loss
regions (``...regions``). Pydantic only, no torch.

Their own module so that the train and experiment tasks' configs, which ``memo-zoo ls``,
``validate`` and ``schema`` read, import no torch (issue 17.8). The modules that implement the
parts import them from here, so their old import paths stay.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ColourJitterConfig(BaseModel):
    """Per-sample, per-channel colour gain and offset (module docstring); off at its defaults."""

    model_config = ConfigDict(extra="forbid")

    shift: float = Field(
        0.0, ge=0, le=1, description="per-channel offset U(-shift, shift) in the frames' [-1, 1] units "
                                     "(0.25 = 32 of 255); 0 = off")
    gain: float = Field(0.0, ge=0, lt=1, description="per-channel gain U(1 - gain, 1 + gain) around 0 (mid-grey); "
                                                     "0 = off")

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.gain > 0


class ColourAugmentConfig(ColourJitterConfig):
    """The jitter of a MEMO training sample, and how its motion frames get it (module docstring)."""

    motion: Literal["same", "own"] = Field(
        "same", description="'same': the motion frames get the sample's transform; 'own': a transform of their "
                            "own, so colour can only come from the reference")


class MotionAugmentConfig(BaseModel):
    """Patch drop and Gaussian noise on the motion frames' latents in training (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    patch_drop: float = Field(
        0.0, ge=0, lt=1, description="probability of zeroing each patch of each motion frame's latent (0 = off)")
    patch_size: int = Field(2, ge=1, description="patch side in latent cells (a ragged last row/column is a patch)")
    noise_std: float = Field(
        0.0, ge=0, description="per sample, noise of std U(0, noise_std) is added to the motion latents, in latent "
                               "units (unit-variance latents: 1 is as loud as the signal); 0 = off")

    @property
    def enabled(self) -> bool:
        return self.patch_drop > 0 or self.noise_std > 0


class LossRegion(BaseModel):
    """One box of extra loss weight, in fractions of the frame (0 = left / top, 1 = right / bottom)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="what the box holds (mouth, face): shown in logs")
    box: tuple[float, float, float, float] = Field(
        ..., description="x0, y0, x1, y1 as fractions of the frame's width and height")
    weight: float = Field(..., gt=0, description="weight added inside the box, on top of 1 everywhere")
    source: Literal["box", "landmarks"] = Field(
        "box", description="box: the same box for every clip; landmarks: each training clip's mouth box measured "
                           "from dlib's 68-point lips (memo_zoo.train.clip_regions), kept in the frame cache, with "
                           "box the fallback for clips where no face is found")
    margin: float = Field(0.3, ge=0, description="landmarks: the lip box widened by this x the lips' width on "
                                                 "every side")
    sample_every: int = Field(5, ge=1, description="landmarks: measure every k-th frame of a clip (median box)")

    @model_validator(mode="after")
    def _inside_frame(self) -> "LossRegion":
        x0, y0, x1, y1 = self.box
        if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
            raise ValueError(f"loss region {self.name!r}: box {list(self.box)} must satisfy "
                             "0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (fractions of the frame)")
        return self
