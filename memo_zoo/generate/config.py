"""``GenerateConfig``: every option of ``memo-zoo generate`` and ``task: {kind: generate}`` (spec §6).

Fields left at ``None`` are filled from the recipe when the model is loaded
(``memo_zoo.generate.loading.load_generator_model``): frame rate and frame size from a training
recipe's ``task.samples`` (the rate and size the network was trained at), else from the network
preset (``sd15`` and ``memo_released``: 30 fps, 512 px, spec §0; ``tiny``: 25 fps, 64 px, the
default talking world);
the step count from the recipe's ``scheduler``; the seed from the recipe's ``seed``.

Classifier-free guidance (spec I2, §10) has two modes; see ``GuidanceConfig`` for the exact
composition of the velocities.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from memo_zoo.emotion import LabelSet
from memo_zoo.errors import MemoZooError
from memo_zoo.generate.fast_path import FastPathConfig
from memo_zoo.perception.configs import VocalSeparatorConfig

NO_EMOTION = "none"  # an emotion "label" meaning the "no emotion" embedding (spec E3)
INTERVAL_SLACK = 1e-9  # a sampler's time grid is float64 arithmetic: 0.5 may arrive as 0.5000000000000001


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def within_interval(interval: Optional[tuple[float, float]], t: float) -> bool:
    """Whether flow time ``t`` is in ``interval`` (None: everywhere); grid times are floats, so an
    edge written as 0.5 also takes a grid time of 0.5 +- 1e-9."""
    if interval is None:
        return True
    low, high = interval
    return low - INTERVAL_SLACK <= t <= high + INTERVAL_SLACK


def ordered_interval(value: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
    """A flow-time interval [t_low, t_high] inside [0, 1], or null."""
    if value is not None:
        low, high = value
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"interval [{low}, {high}] must be [t_low, t_high] with 0 <= t_low <= t_high <= 1 "
                             "(flow time: 1 = noise, 0 = data)")
    return value


class GuidanceConfig(Strict):
    """Classifier-free guidance of the velocity (spec I2, §10).

    The network is evaluated at "levels" of conditioning, all in ONE batched forward:
    ``u`` = unconditional (§10: zero face embedding, zero audio, "no emotion", spatial attention
    without the reference features), ``r`` = reference only (face embedding + reference
    attention), ``ra`` = reference + audio, ``c`` = every condition (reference + audio + emotion).

    - ``joint`` (default, I2): ``v = v_u + s (v_c - v_u)`` with ``s = scale``.
    - ``per_condition``: the conditions are added one at a time, identity first, emotion last
      (the order of Eq. 6, where emotion is guided against the same prediction without it):
      ``v = v_u + s_ref (v_r - v_u) + s_audio (v_ra - v_r) + s_emotion (v_c - v_ra)``.
      With equal scales the terms telescope to ``joint``; levels whose weight comes out zero are
      not evaluated (e.g. ``s_audio = s_emotion`` skips ``ra``).

    Either way a scale of 1 everywhere is the plain conditional prediction (one pass, no guidance).

    ``interval: [t_low, t_high]`` (flow time, 1 = noise, 0 = data) guides only the network
    evaluations at times t with t_low <= t <= t_high; at every other time only the conditional
    level ``c`` is evaluated (one pass, ``v = v_c``), as guidance-interval samplers do (guidance
    where it shapes the video, the plain prediction elsewhere). null, or [0, 1], guides every
    evaluation (I2 as the paper runs it).
    """

    mode: Literal["joint", "per_condition"] = Field(
        "joint", description="'joint': one unconditional pass, v = v_u + scale (v_c - v_u) (I2 default); "
                             "'per_condition': separate scales for reference, audio and emotion, added in that "
                             "order: v = v_u + s_ref (v_r - v_u) + s_audio (v_ra - v_r) + s_emotion (v_c - v_ra)")
    scale: float = Field(3.5, ge=0, description="joint guidance scale (spec I2, §10: 3.5); 1 = no guidance; also "
                                                "the default of every per-condition scale")
    reference: Optional[float] = Field(
        None, ge=0, description="per_condition: scale of the reference image (face embedding + reference "
                                "attention); null = scale")
    audio: Optional[float] = Field(None, ge=0, description="per_condition: scale of the audio; null = scale")
    emotion: Optional[float] = Field(None, ge=0, description="per_condition: scale of the emotion label; null = scale")
    interval: Optional[tuple[float, float]] = Field(
        None, description="[t_low, t_high] in flow time (1 = noise, 0 = data): guide only the network evaluations "
                          "at t_low <= t <= t_high and evaluate the conditional level alone (one pass) at every "
                          "other time, e.g. [0.5, 1.0] = guidance on the noisier half of the trajectory; "
                          "null = every evaluation is guided")

    @field_validator("interval")
    @classmethod
    def _ordered_interval(cls, value: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
        return ordered_interval(value)

    @model_serializer(mode="wrap")
    def _without_unset_interval(self, handler: Any) -> Any:
        # Left out when null: the experiment task hashes the generation options into the names of
        # its video sets (memo_zoo.tasks.experiment.generation_key); the option at its default must
        # not rename the existing ones.
        data = handler(self)
        if isinstance(data, dict) and self.interval is None:
            data.pop("interval", None)
        return data

    def guided_at(self, t: float) -> bool:
        """Whether an evaluation at flow time ``t`` is guided (``interval``; grid times are floats,
        so an edge written as 0.5 also takes a grid time of 0.5 +- 1e-9)."""
        return within_interval(self.interval, t)

    def scales(self) -> tuple[float, float, float]:
        """(reference, audio, emotion) scales; all ``scale`` in joint mode."""
        if self.mode == "joint":
            return (self.scale, self.scale, self.scale)
        pick = lambda value: self.scale if value is None else value  # noqa: E731
        return (pick(self.reference), pick(self.audio), pick(self.emotion))


class StepCacheConfig(Strict):
    """Reuse the network's output between close denoising steps (TeaCache's rule; spec I3's loop).

    Per clip, each velocity evaluation measures the relative L1 change of its input sample z_t
    against the previous evaluation's, ``mean|z - z_prev| / mean|z_prev|``, and adds it to a sum
    started at the last full evaluation. While the sum stays below ``threshold`` the network is not
    run: ``output`` returns the last full evaluation's (guided) velocity, ``residual`` returns the
    current input plus its residual (velocity - input). Otherwise the network runs and the sum
    restarts at 0. The first evaluation of a clip, and the first after the guidance interval's edge
    changes which levels are evaluated, always runs the network. Threshold 0 never reuses.

    The input is z_t rather than a timestep-embedded feature (TeaCache's choice inside a DiT) so the
    rule wraps any network family's ``forward`` unchanged. For rectified flow the velocity is
    constant along a straight path, which is why reusing the ``output`` is the natural default.
    """

    kind: Literal["none", "output", "residual"] = Field(
        "none", description="'none': every evaluation runs the network; 'output': reuse the last computed "
                            "velocity; 'residual': reuse the last computed velocity minus its input, added to the "
                            "current input (TeaCache)")
    threshold: float = Field(
        0.1, ge=0, description="reuse while the relative L1 change of the input, summed since the last full "
                               "evaluation, is below this (0 = never reuse; larger = fewer evaluations)")


class ExpressionGuidanceConfig(Strict):
    """Expression guidance (docs/method.md E6, ``memo_zoo.generate.expression_guidance``): every denoising
    step's predicted clean latents are moved by ``scale`` x the gradient of a latent expression
    classifier's log-probability of the clip's requested emotion (``v' = v - scale * grad / t``)."""

    classifier: Path = Field(..., description="the latent expression classifier (a .safetensors file written by the "
                                              "experiment task's train_expression_classifier, "
                                              "memo_zoo.model.latent_expression); relative paths are under the "
                                              "working directory")
    ensemble: list[Path] = Field(
        default_factory=list,
        description="further trained classifiers (same label set and autoencoder as ``classifier``); the guide "
                    "follows the gradient of the mean of all their log-probabilities, so that a direction only "
                    "one classifier reads (its own shortcut) is averaged away; relative paths are under the "
                    "working directory")
    scale: float = Field(1.0, ge=0, description="step of the clean prediction along grad log p(label | x0) per "
                                                "denoising step; 0 = off")
    interval: Optional[tuple[float, float]] = Field(
        None, description="[t_low, t_high] in flow time (1 = noise, 0 = data): guide only there; null = every step")
    keep_out: list[tuple[float, float, float, float]] = Field(
        default_factory=list,
        description="boxes x0, y0, x1, y1 in fractions of the frame where the guide does not move the latents, e.g. "
                    "the mouth box of the loss (talking_world: [0.28, 0.5, 0.72, 0.8]) so that the lips stay the "
                    "audio's; a latent cell a box cuts is moved by the share of it outside")

    @field_validator("interval")
    @classmethod
    def _ordered_interval(cls, value: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
        return ordered_interval(value)

    @model_serializer(mode="wrap")
    def _without_empty_options(self, handler: Any) -> Any:
        # Left out when empty: the guide's options name the experiment's video sets, and an
        # option at its default must not rename the sets generated before it existed.
        data = handler(self)
        if isinstance(data, dict):
            for key in ("keep_out", "ensemble"):
                if not getattr(self, key):
                    data.pop(key, None)
        return data

    @field_validator("keep_out")
    @classmethod
    def _boxes_inside_frame(cls, value: list[tuple[float, float, float, float]]
                            ) -> list[tuple[float, float, float, float]]:
        for index, (x0, y0, x1, y1) in enumerate(value):
            if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
                raise ValueError(f"keep_out[{index}] = {[x0, y0, x1, y1]} must satisfy 0 <= x0 < x1 <= 1 and "
                                 "0 <= y0 < y1 <= 1 (fractions of the frame)")
        return value


class EmotionSegment(Strict):
    """One entry of an emotion schedule: ``label`` for the frames shown in [start_s, end_s)."""

    start_s: float = Field(..., ge=0, description="start of the segment, seconds into the audio")
    end_s: float = Field(..., gt=0, description="end of the segment (exclusive), seconds")
    label: str = Field(..., min_length=1, description=f"emotion name from the label set, or '{NO_EMOTION}'")

    @model_validator(mode="after")
    def _ordered(self) -> "EmotionSegment":
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self


class GenerateConfig(Strict):
    """Generate a talking video from one portrait and one audio track (spec §0, §6)."""

    image: Path = Field(..., description="reference portrait (any image Pillow reads); resized on its short side "
                                         "and centre-cropped to `size`")
    audio: Path = Field(..., description="driving audio (any file PyAV reads: wav, mp3, m4a, a video's sound...)")
    out: Path = Field(Path("generated.mp4"), description="output video, H.264 + the input audio as AAC (spec I4), in "
                                                         "the container its extension names: .mp4, .mov or .mkv; "
                                                         "relative paths are under the working directory")
    checkpoint: Optional[Path] = Field(
        None, description="trained weights: a training checkpoint (checkpoint-N/ with model/ and "
                          "encoders.safetensors), a training out_dir (its newest checkpoint), or a "
                          "MemoNet.save_pretrained folder; null = random weights (smoke runs, benchmarks)")
    fps: Optional[float] = Field(
        None, gt=0, le=120, description="frame rate of the video; null = the training recipe's samples.fps, else "
                                        "30 for the sd15 and memo_released presets (spec §0) and 25 for tiny")
    size: Optional[int] = Field(
        None, ge=8, description="side of the square frames in pixels; null = the training recipe's samples.size, "
                                "else 512 for sd15 and memo_released and 64 for tiny")
    clip_frames: int = Field(16, ge=1, description="frames generated per autoregressive clip (spec I1: 16)")
    motion_frames: int = Field(
        16, ge=1, description="the first clip's temporal context: the reference latent repeated this many times "
                              "(spec §10); later clips fold every frame of the previous clip into it (T6)")
    first_memory: Literal["reference", "empty"] = Field(
        "reference", description="the first clip's memory: 'reference' = the reference latent repeated "
                                 "motion_frames times (spec §10); 'empty' = no motion frames, as motion dropout "
                                 "trains it (L6), so the first clip's expression comes from the emotion label and "
                                 "the audio rather than from the portrait's own (docs/emotion_diagnosis.md)")
    cfg: GuidanceConfig = Field(default_factory=GuidanceConfig, description="classifier-free guidance (spec I2)")
    expression_guidance: Optional[ExpressionGuidanceConfig] = Field(
        None, description="steer each step's clean prediction towards the requested emotion with a latent "
                          "expression classifier (E6); null = off")
    fast_path: FastPathConfig = Field(
        default_factory=FastPathConfig, description="GPU fast path switches (memo_zoo.generate.fast_path): reference "
                                                    "K/V cache, channels-last, torch.compile, VAE decode chunk")
    cache: StepCacheConfig = Field(
        default_factory=StepCacheConfig, description="reuse the network's output between close denoising steps "
                                                     "(TeaCache's rule); kind none = off")
    noise: Literal["per_clip", "sequential"] = Field(
        "per_clip", description="'per_clip': each clip's noise from its own generator seeded by (seed, clip), so a "
                                "clip does not depend on how many came before; 'sequential': ONE generator seeded "
                                "with `seed`, drawn clip after clip in the (1, c, F, h, w) layout (the released "
                                "MEMO pipeline's noise)")
    motion_source: Literal["latents", "decoded"] = Field(
        "latents", description="what the next clip's temporal context is made of (T6): 'latents' = the clip's clean "
                               "latents; 'decoded' = its last motion_frames frames (at most the clip's) decoded by "
                               "the VAE, clamped to [-1, 1] and encoded again (the released MEMO pipeline, golden "
                               "README Q17)")
    emotion_ties: Literal["first", "smallest"] = Field(
        "first", description="a clip whose frames are split evenly between labels takes 'first': the tied label seen "
                             "first in the clip (E5); 'smallest': the smallest label index (torch.mode, as the "
                             "released MEMO pipeline; golden README Q15)")
    vocal_separator: Optional[VocalSeparatorConfig] = Field(
        None, description="separate the vocals before the audio encoder, as the released MEMO does (MDX-Net "
                          "Kim_Vocal_2.onnx in ONNX Runtime, e.g. {weights: memoavatar/memo}); null = the audio as "
                          "it is. Emotion detection and the muxed track keep the original audio")
    emotion: Union[None, str, list[EmotionSegment]] = Field(
        None, description="null: detected per clip by the recipe's emotion_detector (spec E5; 'no emotion' when "
                          "the recipe has none); a label (e.g. happy) for every clip (E4 override; 'none' = no "
                          "emotion); or a schedule [{start_s, end_s, label}] (frames outside it: as null). Each "
                          "clip takes the most frequent label of its frames (E5)")
    label_set: Optional[LabelSet] = Field(
        None, description="names of the emotion classes; null = the detector's labels, else the set with as many "
                          "classes as the network's audio_fusion.num_emotion_classes (8: paper, 9: emotion2vec)")
    seed: Optional[int] = Field(None, ge=0, description="seed of the noise (each clip draws from (seed, clip)); "
                                                        "null = the recipe's seed")
    max_seconds: Optional[float] = Field(None, gt=0, description="use only the first N seconds of the audio")
    check_face: bool = Field(True, description="warn when no face is found in the portrait (LBP cascade of "
                                               "face_crop); generation continues on the whole image")
    device: Optional[str] = Field(
        None, description="'cpu', 'cuda', 'cuda:N' or 'auto'; null = $MEMO_ZOO_DEVICE (settings.device)")
    dtype: Optional[Literal["float32", "bfloat16", "float16"]] = Field(
        None, description="autocast dtype of the networks; null = bfloat16 on CUDA, float32 on CPU. The sampler "
                          "integrates in float32 either way")

    @model_serializer(mode="wrap")
    def _without_unkeyed_defaults(self, handler: Any) -> Any:
        # Options at their defaults that predate them are left out, so an existing run's dump stays as it was.
        return without_unkeyed_defaults(handler(self), self.cache)

    @field_validator("emotion")
    @classmethod
    def _schedule_not_overlapping(cls, value):
        if isinstance(value, list):
            if not value:
                raise ValueError("an emotion schedule needs at least one segment (use null to detect)")
            ordered = sorted(value, key=lambda s: s.start_s)
            for before, after in zip(ordered, ordered[1:]):
                if after.start_s < before.end_s:
                    raise ValueError(f"emotion segments overlap: [{before.start_s}, {before.end_s}) and "
                                     f"[{after.start_s}, {after.end_s})")
        return value

    @field_validator("out")
    @classmethod
    def _writable_container(cls, value: Path) -> Path:
        from memo_zoo.data.media import container_format  # PyAV only when generation options are read

        if value.is_dir():  # say so, rather than "no extension" (check_output repeats it for late callers)
            raise ValueError(folder_message(value))
        try:
            container_format(value)
        except ValueError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and value != "auto" and not (value == "cpu" or value.startswith("cuda")):
            raise ValueError(f"unknown device {value!r}; use auto, cpu, cuda or cuda:N")
        return value


def without_unkeyed_defaults(data: Any, cache: StepCacheConfig) -> Any:
    """``data`` (a dumped options model) without its ``cache`` entry when step caching is off, and
    without ``first_memory`` and ``expression_guidance`` at their defaults: a new option at its
    default must not change the experiment task's video keys."""
    if isinstance(data, dict):
        if cache.kind == "none":
            data.pop("cache", None)
        if data.get("first_memory") == "reference":
            data.pop("first_memory")
        if "expression_guidance" in data and data["expression_guidance"] is None:
            data.pop("expression_guidance")
    return data


def check_output(config: GenerateConfig) -> None:
    """Refuse an ``out`` that would destroy an input or cannot be a file, before any work is done.

    ``out`` naming the portrait or the audio (the same path once resolved, or the same file under
    another name: a hard link, a symlink, ``./a.wav`` vs ``a.wav``) would replace the user's input
    with the video; an existing folder cannot be replaced by a file. Run on the paths as they will
    be opened, so a caller that resolves relative paths (the generate task) calls it after that.
    """
    out = Path(config.out)
    if out.is_dir():
        raise MemoZooError(f"--out {folder_message(out)}")
    for flag, source in (("--image", config.image), ("--audio", config.audio)):
        if _same_file(out, Path(source)):
            raise MemoZooError(f"--out {out} is the input {flag} {source}: writing the video there would "
                               "overwrite it; choose another output name")


def folder_message(out: Path) -> str:
    return f"{out} is an existing folder; give the video's file name, e.g. {out / 'generated.mp4'}"


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links and other aliases of one inode
    except OSError:  # one of them does not exist (yet): then they cannot be one file
        return False
