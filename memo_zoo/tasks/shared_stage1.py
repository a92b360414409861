"""Stage 1 trained once and shared by every variant of an experiment (spec L2, L3).

MEMO's stage 1 trains the Reference Net and the Diffusion Net's spatial layers on single frames,
with no audio, no emotion and no memory. The parts the ablations swap (temporal module, audio
fusion, audio encoder) are MEMO's added modules: in stage 1 they see one frame, zero audio and
an empty memory, and they start as the identity (zero output projections, A6) and stay frozen,
so stage 1 ends the same whichever of them a variant uses. Training it once per sweep, rather
than once per variant, halves the CPU default's ablations (1500 of 2100 steps are stage 1).

The shared folder is ``<out_dir>/stage1-<key>``, outside the recipe's own folder, so every recipe
with the same stage 1 (all the ablations built on ``experiment_tiny``) reuses it. The key covers
what stage 1 reads: the model without its temporal, audio-fusion and audio-encoder parts (with
the temporal part when ``animatediff`` initialises it, since its copied output projection is not
the identity), the data, the seed, the stage-1 training options and the autoencoder's options.

Each variant then trains the remaining phases from that checkpoint: the network without its
audio and temporal modules and the image encoder come from stage 1
(``init_weights_scope: spatial``), and its own added modules keep their own initialisation.
Step counts of the later phases restart at 0 (with their own lr warm-up), so the variant's loss
curve is ``loss`` from step 0 and stage 1's is ``stage1.loss`` in the run that trained it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from memo_zoo.data.sample_config import SampleConfig
from memo_zoo.tasks.stages import AutoencoderOptions
from memo_zoo.train.config import TrainConfig
from memo_zoo.train.part_configs import LossRegion

# task.train fields that do not change the trained weights (where and how often things are written,
# how fast: a cached latent is the latent the VAE gives that frame).
NON_LEARNING_TRAIN_FIELDS = {"out_dir", "resume", "log_every", "checkpoint_every", "keep_checkpoints", "num_workers",
                             "latent_cache_mb", "latent_store", "fused_adamw"}

# task.train fields added after trainings had been keyed: in a key only when not at their default,
# so that the folders of earlier trainings keep their names and are reused.
LATER_TRAIN_FIELDS = ("motion_augment", "colour_augment", "loss_target")
LATER_REGION_FIELDS = ("source", "margin", "sample_every")
LATER_SAMPLE_FIELDS = ("motion_decoupling",)

# task.train fields stage 1 does not read (it sees single frames, no motion frames): reset to their
# defaults in stage 1's options, so that variants differing only in them share it.
STAGE2_ONLY_TRAIN_FIELDS = ("motion_augment",)

# model.* parts stage 1 does not read (module docstring).
ADDED_PARTS = ("temporal", "audio_fusion", "audio_encoder")


def split_stage1(train: TrainConfig) -> tuple[TrainConfig, TrainConfig] | None:
    """(stage 1, the rest) when the first phase is a spatial one of fixed length followed by others;
    None when there is nothing to share."""
    first = train.phases[0]
    if first.trainable != "spatial" or first.steps is None or len(train.phases) < 2:
        return None
    data = train.model_dump()
    stage2_only = {name: TrainConfig.model_fields[name].get_default(call_default_factory=True)
                   for name in STAGE2_ONLY_TRAIN_FIELDS}
    # Stage 1 reads the colour shift (its reference and target frames are recoloured) but no motion
    # frames, so how they would be recoloured does not change it.
    colour = dict(data["colour_augment"], motion="same")
    # Nor where its samples' motion frames would come from (drawn after everything it reads).
    samples = dict(data["samples"], motion_decoupling=0.0)
    stage1 = TrainConfig.model_validate({**data, "steps": first.steps, "phases": data["phases"][:1], **stage2_only,
                                         "colour_augment": colour, "samples": samples})
    robust = dict(data["robust_loss"], start_step=max(0, train.robust_loss.start_step - first.steps))
    rest = TrainConfig.model_validate({**data, "steps": train.steps - first.steps, "phases": data["phases"][1:],
                                       "robust_loss": robust})
    return stage1, rest


def train_key_document(train: TrainConfig) -> dict[str, Any]:
    """The options of ``train`` that change the trained weights, as a JSON-able document to hash."""
    document = train.model_dump(mode="json", exclude=NON_LEARNING_TRAIN_FIELDS)
    for region in document.get("loss_regions") or []:
        # fields added after trainings had been keyed: in a key only when not at their defaults
        for name in LATER_REGION_FIELDS:
            if region.get(name) == LossRegion.model_fields[name].default:
                del region[name]
    for name in LATER_SAMPLE_FIELDS:
        if document["samples"][name] == SampleConfig.model_fields[name].default:
            del document["samples"][name]
    for name in LATER_TRAIN_FIELDS:
        default = TrainConfig.model_fields[name].get_default(call_default_factory=True)
        if document[name] == (default.model_dump(mode="json") if isinstance(default, BaseModel) else default):
            del document[name]
    return document


def stage1_key_document(recipe: BaseModel, stage1: TrainConfig,
                        train_vae: AutoencoderOptions | None) -> dict[str, Any]:
    """What stage 1's weights depend on (module docstring), as a JSON-able document to hash."""
    document = recipe.model_dump(mode="json")
    model = {part: config for part, config in document["model"].items() if part not in ADDED_PARTS}
    if stage1.animatediff is not None:
        model["temporal"] = document["model"]["temporal"]
    key: dict[str, Any] = {"stage": "stage1", "model": model, "data": document["data"], "seed": document["seed"],
                           "train": train_key_document(stage1)}
    if train_vae is not None:
        key["train_vae"] = train_vae.key_document()
    return key
