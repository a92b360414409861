"""The option models of the training's parts that ``TrainConfig`` nests: colour augmentation
(``memo_zoo.train.colour_augment``), motion-frame augmentation (``...motion_augment``) and loss
regions (``...regions``); and the options of the latent expression classifier
(``...latent_expression``), which the experiment task nests. Pydantic only, no torch.

Their own module so that the train and experiment tasks' configs, which ``memo-zoo ls``,
``validate`` and ``schema`` read, import no torch (issue 17.8). The modules that implement the
parts import them from here, so their old import paths stay.
"""

from __future__ import annotations

from typing import Any, Literal

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


class ExpressionClassifierTraining(BaseModel):
    """Train the latent expression classifier of ``generation.expression_guidance`` (E6) on the training
    clips' latents and emotion labels (``memo_zoo.tasks.expression_classifier``) when its file does
    not exist yet. Its own seed, not the recipe's: every training seed of a sweep shares one guide.

    The clips must show each person in several emotions: with two clips per person (the default
    talking_world of the experiments) a classifier learns the people, not the expressions, and reads
    held-out faces at chance (docs/emotion_diagnosis.md, section 12); ``dataset`` can point it at
    clips that do."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(12, ge=1, description="passes over the training frames")
    batch_size: int = Field(256, ge=1, description="latents per step")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate (cosine decay to 0)")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    noise: float = Field(0.5, ge=0, description="Gaussian noise added to each training latent, its std drawn in "
                                                "[0, noise] (so the noisier steps' blurred predictions read too)")
    width: int = Field(32, ge=4, description="channels of the first convolutions (the classifier stays small and "
                                             "smooth: memo_zoo.model.latent_expression)")
    dataset: dict[str, Any] | list[dict[str, Any]] = Field(
        default_factory=dict, description="options that replace data.dataset's for the classifier's clips (same "
                                          "kind), e.g. {clips_per_identity: 8} for a talking_world where every "
                                          "person shows every emotion; a list of such options reads the clips of "
                                          "every one (e.g. worlds of several seeds: more people); {} = "
                                          "data.dataset's training clips")
    frame_stride: int = Field(1, ge=1, description="use every Nth frame of each clip")
    min_intensity: float | None = Field(
        None, ge=0, le=1, description="label each frame with its own true emotion (the dataset's per-frame truth: "
                                      "talking_world) and keep only the frames whose true expression intensity is at "
                                      "least this, as world_expression scores them; null = every frame, labelled "
                                      "with its clip's emotion")
    reference: bool = Field(False, description="also read a reference frame of the same person (drawn from another "
                                               "of their clips, anew each epoch; the portrait at generation) and see "
                                               "(x - reference, x): learns what an expression changes, not who "
                                               "shows it (memo_zoo.model.latent_expression)")
    validation_fraction: float = Field(0.15, ge=0, lt=1, description="speakers held out to measure the accuracy "
                                                                     "on faces the classifier never saw")
    seed: int = Field(0, ge=0, description="initialisation, order, noise and the held-out speakers")

    @model_validator(mode="after")
    def _some_clips(self) -> "ExpressionClassifierTraining":
        if isinstance(self.dataset, list) and not self.dataset:
            raise ValueError("dataset: an empty list names no clips; give {} for data.dataset's own")
        return self
