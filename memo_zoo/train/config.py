"""``TrainConfig``: every option of ``task: {kind: train}`` (spec §5, L1-L7, T5).

Defaults are sized for the ``tiny`` network on the default ``talking_world`` on a CPU (a loss that
falls clearly within minutes); the paper's values are named in each description so that an
``sd15`` recipe can set them (L7: lr 1e-5 fixed, 15k steps of stage 1, 600k of stage 2).

Phases (L2, L3) split the ``steps``: each phase names which modules train. ``spatial`` is the
paper's stage 1 (Reference Net, the Diffusion Net's spatial layers and the image projector, on
single frames); ``new`` the warm-up of stage 2 (temporal and audio modules and the encoders'
trainable parts, the rest frozen); ``temporal_audio`` the temporal and audio modules alone (the
released code's fine-tuning, ``recipes/finetune_memo.yaml``); ``all`` trains everything trainable.
One ``all`` phase is the default, because the tiny model starts from random weights, not from SD1.5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The torch-free homes of these (issue 17.8): the train and experiment task configs import no torch.
from memo_zoo.data.sample_config import SampleConfig
from memo_zoo.train.part_configs import ColourAugmentConfig, LossRegion, MotionAugmentConfig

Trainable = Literal["spatial", "new", "temporal_audio", "all"]
LossTarget = Literal["velocity", "data"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhaseConfig(Strict):
    """A span of training steps with one set of trainable modules (spec L2, L3)."""

    name: str = Field(..., min_length=1, description="shown in logs and MLflow (metric 'phase' is its index)")
    steps: Optional[int] = Field(
        None, ge=1, description="optimizer steps of this phase; null (last phase only) = the rest of `steps`")
    trainable: Trainable = Field(
        "all", description="'spatial': Reference Net + Diffusion Net spatial layers + image projector, on single "
                           "frames with no audio and no memory (stage 1, L2); 'new': temporal + audio modules + "
                           "the encoders' trainable parts, the rest frozen (stage-2 warm-up, L3); 'temporal_audio': "
                           "the temporal + audio modules only, encoders and image projector frozen too (the "
                           "released code's fine-tuning: configs/finetune.yaml); 'all': every "
                           "trainable parameter (stage-2 joint training, L3)")


class TimestepConfig(Strict):
    """How flow times t in (0, 1) are drawn per sample (spec L1)."""

    distribution: Literal["logit_normal", "uniform"] = Field(
        "logit_normal", description="'logit_normal': t = sigmoid(N(mean, std)) (SD3's default, L1); 'uniform': U(0, 1)")
    mean: float = Field(0.0, description="mean of the normal before the sigmoid (SD3: 0)")
    std: float = Field(1.0, gt=0, description="standard deviation of the normal before the sigmoid (SD3: 1)")


class ConditionDropoutConfig(Strict):
    """Probability, per sample and condition, of training the unconditional branch (spec L6, §10)."""

    emotion: float = Field(0.05, ge=0, le=1, description="replace the label by the 'no emotion' index (E3)")
    reference: float = Field(
        0.05, ge=0, le=1, description="zero image embedding (no face embedding) and reference attention off")
    audio: float = Field(0.05, ge=0, le=1, description="zero audio tokens")
    motion: float = Field(0.05, ge=0, le=1, description="empty memory: no motion frames")


class RobustLossConfig(Strict):
    """Drop a sample from the update when its loss jumps above a threshold (spec L5)."""

    threshold: Optional[float] = Field(
        0.1, gt=0, description="per-sample velocity MSE above which the sample is dropped (paper: 0.1, typical "
                               "loss ~0.03 when fine-tuning SD1.5); null disables the filter. A model trained "
                               "from scratch starts near 1-2: raise it (or start_step) for such runs")
    start_step: int = Field(
        0, ge=0, description="steps before the filter is applied (lets a model from scratch reach typical losses)")


class TrainConfig(Strict):
    """Train the MEMO network of the recipe's ``model`` on ``data.dataset`` (spec §5)."""

    out_dir: Optional[Path] = Field(
        None, description="checkpoint folder, relative to the working directory; null = checkpoints/<recipe name> "
                          "(+ /<variant> in a sweep)")
    resume: bool = Field(
        False, description="continue from the latest checkpoint in out_dir (same loss curve as an unbroken run); "
                           "`memo-zoo train --resume` sets it")
    steps: int = Field(
        300, ge=1, description="optimizer steps in total, over all phases (paper: 15k stage 1 + 600k stage 2, L7)")
    batch_size: int = Field(4, ge=1, description="samples per process per micro-batch")
    grad_accumulation: int = Field(
        1, ge=1, description="micro-batches per optimizer step; global batch = batch_size x processes x this")
    lr: float = Field(
        1e-3, gt=0, description="learning rate, constant after warm-up (paper: 1e-5 fixed for a pretrained SD1.5, "
                                "L7; the tiny model trains from scratch and needs a larger one)")
    lr_warmup_steps: int = Field(0, ge=0, description="linear warm-up from 0 to lr over this many steps (paper: none)")
    optimizer: Literal["adamw"] = Field("adamw", description="optimizer (torch AdamW)")
    fused_adamw: bool = Field(
        True, description="torch's fused AdamW kernel (the same update within float rounding, one kernel for all "
                          "parameters instead of about ten small ops per parameter; several times faster on CPU)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay")
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    adam_eps: float = Field(1e-8, gt=0, description="AdamW epsilon")
    max_grad_norm: Optional[float] = Field(
        1.0, gt=0, description="clip the global gradient L2 norm to this (null: no clipping; the norm is logged)")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        "no", description="autocast dtype through accelerate ('fp16' adds a gradient scaler; CUDA only)")
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in backward (both nets), for sd15 at 512 px")
    checkpoint_every: int = Field(
        100, ge=1, description="write a checkpoint every N optimizer steps (and always at exit, Ctrl-C included)")
    keep_checkpoints: int = Field(3, ge=1, description="keep only the newest K checkpoints")
    log_every: int = Field(10, ge=1, description="log MLflow metrics every N optimizer steps (means over the N)")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per training process")
    vae_batch: int = Field(32, ge=1, description="frames per frozen-VAE encode call (bounds memory at 512 px)")
    latent_cache_mb: int = Field(
        2048, ge=0, description="keep up to this many MiB of frozen-VAE latents per training process, so a frame "
                                "drawn again is not encoded again (memo_zoo.train.latent_cache; only with a VAE "
                                "whose encoding is deterministic and no colour_augment); 0: encode every step")
    latent_store: bool = Field(
        True, description="keep each clip's frozen-VAE latents on disk beside its decoded frames, encoded once for "
                          "every training that uses the same VAE (a shared stage 1 and each variant's joint phase; "
                          "memo_zoo.train.latent_cache.ClipLatentStore); needs latent_cache_mb > 0")
    init_weights: Optional[Path] = Field(
        None, description="start the network from a saved MemoNet folder (memo_net.safetensors) or a training "
                          "checkpoint folder (its model/ and the trainable encoders of its encoders.safetensors), "
                          "e.g. the end of stage 1; the recipe's network and encoders must match")
    init_weights_scope: Literal["all", "spatial"] = Field(
        "all", description="what init_weights sets: 'all' the whole network and the trainable encoders; 'spatial' "
                           "what stage 1 trains (L2): the network without its audio and temporal modules, and the "
                           "image encoder, so that a variant with other audio or temporal modules starts from a "
                           "shared stage 1 (task experiment's share_stage1)")
    sd15_unet: Optional[Path] = Field(
        None, description="initialise both nets' spatial layers from a LOCAL SD1.5 diffusers folder (spec A6); "
                          "applied before init_weights")
    animatediff: Optional[Path] = Field(
        None, description="initialise the Diffusion Net's temporal modules from a LOCAL AnimateDiff motion-module "
                          "checkpoint (spec A6): the original release's state dict (mm_sd_v15_v2.ckpt-style "
                          ".ckpt/.pth read with torch.load(weights_only=True), or .safetensors) or a diffusers "
                          "MotionAdapter folder (diffusion_pytorch_model.safetensors + config.json). Copies q/k/v, "
                          "the matching norm and the output projection of each block's first attention; the report "
                          "goes to MLflow as animatediff_init.json. Applied after sd15_unet, before init_weights")
    animatediff_output: Literal["copy", "zero"] = Field(
        "copy", description="with `animatediff`: 'copy' takes AnimateDiff's trained attention output projection; "
                            "'zero' keeps MEMO's zero-initialised one, so the temporal modules start as the "
                            "identity (A6)")
    seed: Optional[int] = Field(
        None, ge=0, description="seed of noise, timesteps and dropout draws (per rank and step); null = recipe seed")
    samples: SampleConfig = Field(
        default_factory=SampleConfig,
        description="how samples are cut from clips: fps, size, clip_frames, motion_frames (T5: 16, or a list such "
                    "as [16, 32, 48] drawn per sample), audio_window, emotion_decoupling (L4), label_set; its seed "
                    "defaults to the recipe seed")
    motion_padding: Literal["drop", "keep"] = Field(
        "drop", description="motion slots without a real past frame (motion_mask False): 'drop' builds the memory "
                            "from the real frames only (none: empty memory); 'keep' feeds the padding frames too "
                            "(with samples.motion_padding=reference this trains §10's first-clip memory)")
    motion_augment: MotionAugmentConfig = Field(
        default_factory=MotionAugmentConfig,
        description="patch drop and Gaussian noise on the motion frames' latents (memo_zoo.train.motion_augment), so "
                    "the net takes appearance from the reference rather than from its own earlier clips in long "
                    "generation; off by default")
    colour_augment: ColourAugmentConfig = Field(
        default_factory=ColourAugmentConfig,
        description="per-sample colour gain and offset of the reference, target and motion frames "
                    "(memo_zoo.train.colour_augment), so that colours can only come from the reference; 'motion: own' "
                    "recolours the motion frames apart; off by default")
    timesteps: TimestepConfig = Field(default_factory=TimestepConfig, description="flow-time sampling (L1)")
    condition_dropout: ConditionDropoutConfig = Field(
        default_factory=ConditionDropoutConfig, description="per-condition dropout (L6)")
    loss_target: LossTarget = Field(
        "velocity", description="'velocity': the velocity MSE (L1, equal to the paper's weighted noise loss); "
                                "'data': the MSE of the clean latents recovered from the velocity, i.e. the "
                                "velocity MSE times t^2, as the released MEMO's finetune.py (robust_loss's 0.1 "
                                "threshold is on that scale)")
    robust_loss: RobustLossConfig = Field(default_factory=RobustLossConfig, description="robust training (L5)")
    loss_regions: list[LossRegion] = Field(
        default_factory=list,
        description="boxes of extra loss weight in fractions of the frame, e.g. [{name: mouth, box: [0.28, 0.5, "
                    "0.72, 0.8], weight: 4}] (memo_zoo.train.regions: Hallo-style lip / face emphasis for "
                    "aligned crops; the weighted loss keeps the plain loss's scale); empty = L1's plain MSE")
    phases: list[PhaseConfig] = Field(
        default_factory=lambda: [PhaseConfig(name="joint", steps=None, trainable="all")],
        min_length=1,
        description="consecutive phases (L2, L3), e.g. [{name: stage1, steps: 15000, trainable: spatial}, "
                    "{name: warmup, steps: 5000, trainable: new}, {name: joint, trainable: all}]")

    @model_validator(mode="after")
    def _phases_cover_steps(self) -> "TrainConfig":
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique, got {names}")
        open_ended = [i for i, p in enumerate(self.phases) if p.steps is None]
        if open_ended and open_ended != [len(self.phases) - 1]:
            raise ValueError("only the last phase may leave `steps` unset (it takes the remaining steps)")
        fixed = sum(p.steps for p in self.phases if p.steps is not None)
        if open_ended and fixed >= self.steps:
            raise ValueError(f"the phases before the last take {fixed} steps, leaving none of steps={self.steps} "
                             "for the last one")
        if not open_ended and fixed != self.steps:
            raise ValueError(f"the phases' steps add up to {fixed} but steps={self.steps}")
        return self

    def phase_spans(self) -> list[tuple[PhaseConfig, int, int]]:
        """``(phase, first_step, end_step)`` with steps counted from 0, end exclusive."""
        spans, start = [], 0
        for phase in self.phases:
            end = self.steps if phase.steps is None else start + phase.steps
            spans.append((phase, start, end))
            start = end
        return spans

    def phase_at(self, step: int) -> tuple[int, PhaseConfig]:
        """Index and phase of the optimizer step ``step`` (0-based)."""
        for index, (phase, start, end) in enumerate(self.phase_spans()):
            if start <= step < end:
                return index, phase
        raise ValueError(f"step {step} is outside 0..{self.steps - 1}")
