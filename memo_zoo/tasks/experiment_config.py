"""``ExperimentConfig``: the options of ``task: {kind: experiment}``, train -> generate -> evaluate.

An ablation (spec §9) is a recipe with this task and a ``sweep:``: each variant trains the
recipe's network with the same budget and seed (``train``: the options of ``task: train``),
generates the same held-out videos from each held-out clip's first frame and audio
(``held_out``, ``generation``) and measures them with the recipe's ``metrics`` against the clips
themselves and their truth. ``train_detector`` and ``train_vae`` hold the options of the
``train_emotion`` and ``train_vae`` tasks, which the components' plugins register
(``memo_zoo.tasks.stages``). ``seeds`` > 1 repeats every variant with the recipe's ``seed``,
``seed + 1``, ...: the runner makes the replicates (``memo_zoo.runner``) and the report gives
each variant's mean and spread over them (``memo_zoo.eval.report``). It is a count, not a list,
so that the recipe's ``seed`` stays the one field that says which seed a run uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from memo_zoo.emotion import PAPER_LABELS
from memo_zoo.eval.eval_options import EvalOptions
from memo_zoo.generate.config import (
    EmotionSegment, ExpressionGuidanceConfig, GuidanceConfig, StepCacheConfig, without_unkeyed_defaults,
)
from memo_zoo.tasks.stages import AUTOENCODER, EMOTION_DETECTOR
from memo_zoo.train.config import TrainConfig
# The torch-free home of the classifier's options; imported here, where the experiment nests them.
from memo_zoo.train.part_configs import ExpressionClassifierTraining


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeldOutConfig(Strict):
    """Which clips of ``data.dataset`` drive the evaluation videos (their first frame is the
    portrait, their audio the driving audio, their frames and truth the reference)."""

    split: Literal["train", "test", "all"] = Field(
        "test", description="dataset split to take the clips from (talking_world: test = held-out identities)")
    min_seconds: float = Field(
        0.0, ge=0, description="only clips at least this long (e.g. 60: the world's long clips, for memory and "
                               "identity-over-time effects)")
    videos: int = Field(2, ge=1, description="number of clips (the longest first, then by id)")
    max_seconds: Optional[float] = Field(
        None, gt=0, description="use only the first N seconds of each clip's audio (quick runs)")


class GenerationOptions(Strict):
    """How each evaluation video is generated (the options of ``memo-zoo generate`` that matter
    to an ablation; sizes and fps come from the training recipe)."""

    cfg: GuidanceConfig = Field(default_factory=GuidanceConfig, description="classifier-free guidance (spec I2)")
    cache: StepCacheConfig = Field(
        default_factory=StepCacheConfig, description="reuse the network's output between close denoising steps "
                                                     "(TeaCache's rule, GenerateConfig.cache); kind none = off")
    clip_frames: int = Field(16, ge=1, description="frames per autoregressive clip (spec I1: 16)")
    motion_frames: int = Field(16, ge=1, description="first clip's context: the reference repeated (spec §10)")
    first_memory: Literal["reference", "empty"] = Field(
        "reference", description="the first clip's memory: the reference repeated (spec §10) or empty (as motion "
                                 "dropout trains it; GenerateConfig.first_memory)")
    expression_guidance: Optional[ExpressionGuidanceConfig] = Field(
        None, description="steer each step towards the requested emotion with a latent expression classifier (E6, "
                          "GenerateConfig.expression_guidance); trained first when missing and "
                          "task.train_expression_classifier is set; null = off")
    emotion: Union[Literal["detected", "truth"], str] = Field(
        "detected", description="'detected': the recipe's emotion_detector per clip (spec E5); 'truth': the "
                                "driving clip's true per-frame emotion as a schedule (an oracle); or a label for "
                                "every clip (E4 override; 'none' = no emotion)")
    seed: Optional[int] = Field(None, ge=0, description="noise seed; null = the recipe's seed (same for all variants)")
    device: Optional[str] = Field(None, description="cpu, cuda, cuda:N or auto; null = $MEMO_ZOO_DEVICE")

    @model_serializer(mode="wrap")
    def _without_unkeyed_defaults(self, handler: Any) -> Any:
        # Options at their unkeyed defaults are left out: generation_key hashes these options into the
        # video sets' folder names.
        return without_unkeyed_defaults(handler(self), self.cache)


def _default_schedule() -> list[EmotionSegment]:
    return [EmotionSegment(start_s=0.0, end_s=2.0, label="neutral"),
            EmotionSegment(start_s=2.0, end_s=4.0, label="happy"),
            EmotionSegment(start_s=4.0, end_s=6.0, label="sad")]


class OverrideOptions(Strict):
    """The manual-override study (spec E4, ``memo_zoo.tasks.override``): the same portrait and audio
    generated under each requested label, and under a schedule of labels; the recipe's world
    expression metric reads every frame, giving a confusion matrix of measured against requested
    label, and the measured expression over time against the schedule."""

    clips: int = Field(2, ge=1, description="held-out clips (task.held_out.split, the longest first): each one's "
                                            "first frame and audio are generated under every label")
    seconds: float = Field(3.0, gt=0, description="seconds of each clip's audio generated per label")
    labels: Optional[list[str]] = Field(None, description="labels to request; null = every label of the set (8)")
    schedule: list[EmotionSegment] = Field(
        default_factory=_default_schedule,
        description="labels over time for the schedule video, generated from the first clip (which must be "
                    "at least as long as the schedule): [{start_s, end_s, label}, ...], contiguous from 0")
    metrics: list[str] = Field(
        default_factory=lambda: ["world_expression", "world_lip_sync", "world_identity"],
        description="kinds of the recipe's metrics to measure the override videos with (their options are the "
                    "recipe's); the first must give per-frame expression labels (world_expression)")

    @model_validator(mode="after")
    def _readable(self) -> "OverrideOptions":
        # Checked when the recipe is read, not after a training: the world measurer reads the paper's 8.
        asked = list(self.labels or []) + [segment.label for segment in self.schedule]
        unknown = sorted({label for label in asked if label not in PAPER_LABELS})
        if unknown:
            raise ValueError(f"labels {unknown} are not labels the world measurer reads ({', '.join(PAPER_LABELS)})")
        ends = 0.0
        for segment in self.schedule:
            if abs(segment.start_s - ends) > 1e-9:
                raise ValueError(f"schedule must be contiguous from 0 s: a segment starts at {segment.start_s} s "
                                 f"where the previous one ended at {ends} s")
            ends = segment.end_s
        if not self.metrics:
            raise ValueError("metrics must list at least the expression metric (world_expression)")
        return self


class ExperimentConfig(Strict):
    """Train the recipe's network, generate held-out videos and evaluate them (issue 7, spec §9)."""

    train: TrainConfig = Field(default_factory=TrainConfig, description="training options (task: train's); "
                               "out_dir null = under out_dir below, shared by variants that train the same way")
    held_out: HeldOutConfig = Field(default_factory=HeldOutConfig, description="evaluation clips")
    generation: GenerationOptions = Field(default_factory=GenerationOptions, description="generation options")
    out_dir: Path = Field(
        Path("experiments"), description="where checkpoints, generated videos and reports go (relative to the "
                                         "working directory); each training and each generation set lives in "
                                         "a folder named by a hash of what produced it, so a re-run reuses "
                                         "finished work and variants that differ only in generation (cfg) "
                                         "share one training")
    train_detector: Annotated[Optional[Any], EMOTION_DETECTOR] = Field(
        None, description="with generation.emotion 'detected': when the recipe's emotion_detector checkpoint does "
                          "not exist yet, train it first on data.dataset with these options (task train_emotion's, "
                          "spec D1-D2), so an ablation with detected labels is still one command")
    train_expression_classifier: Optional[ExpressionClassifierTraining] = Field(
        None, description="with generation.expression_guidance: when its classifier file does not exist yet, train "
                          "it first on data.dataset's training clips (latents of model.vae, clip emotion labels)")
    train_vae: Annotated[Optional[Any], AUTOENCODER] = Field(
        None, description="when model.vae is an sd_vae whose weights folder does not exist yet, train it first on "
                          "data.dataset's frames with these options (task train_vae's; size and fps come from "
                          "train.samples)")
    share_stage1: bool = Field(
        True, description="when train.phases starts with a spatial phase (stage 1, L2): train it once in "
                          "<out_dir>/stage1-<hash> for every variant and recipe that has the same stage 1, and train "
                          "each variant's later phases from it (memo_zoo.tasks.shared_stage1); false = "
                          "every variant trains all its phases itself")
    seeds: int = Field(
        1, ge=1, description="training seeds per variant: each variant trains, generates and is evaluated once "
                             "per seed, the recipe's seed, seed + 1, ... (one nested MLflow run each, "
                             "<variant>.seed<N>), and the report gives every variant's mean and spread over "
                             "them; 1 = one run per variant with the recipe's seed (docs/recipes.md, "
                             "'Several seeds per variant')")
    evaluation: EvalOptions = Field(
        default_factory=EvalOptions, description="where the held-out videos are measured: workers 1 = in this "
                                                 "process; more = contiguous shards on Ray workers (address: a "
                                                 "cluster, else a local one), same figures (docs/scale.md)")
    override: Optional[OverrideOptions] = Field(
        None, description="after the evaluation, also generate held-out clips under every requested emotion label "
                          "and a label schedule, and measure how far the expression follows the request "
                          "(recipes/emotion_override.yaml); null = no override study")
    log_videos: bool = Field(True, description="log the generated videos (with audio) as MLflow artifacts")
    report: bool = Field(True, description="write the comparison report (Markdown + HTML + plots) at the end")
