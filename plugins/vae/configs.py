"""Options of the built-in autoencoders and of task train_vae (spec A1): pydantic only, no torch.

``plugin.py`` registers these without importing the autoencoders, so ``memo-zoo ls``, ``validate``
and ``schema`` never import torch or diffusers (issue 17.8). Each component module imports its
config from here, so the old import paths (``memo_zoo_plugins.vae.sd_vae.SDVAEConfig``, ...) stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from memo_zoo.errors import MemoZooError
from memo_zoo.train.part_configs import ColourJitterConfig
from memo_zoo.weights import weights_path


class PixelVAEConfig(BaseModel):
    """Identity autoencoder: latents = scaling_factor * pixel_unshuffle(frames, patch_size)."""

    model_config = ConfigDict(extra="forbid")

    scaling_factor: float = Field(1.0, gt=0, description="latent = scaling_factor * frame (frames in [-1, 1])")
    patch_size: int = Field(1, ge=1, le=32, description="pixels folded into channels per side: latents have 3 p^2 "
                                                        "channels at 1/p of the resolution (1 = plain pixels)")


class SDVAEConfig(BaseModel):
    """Pretrained AutoencoderKL (SD1.5 VAE, A1) from a local folder or file."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field(..., description="AutoencoderKL folder (or SD pipeline folder with vae/), or a single "
                                          "checkpoint file: a path, or a name under MEMO_ZOO_WEIGHTS_DIR")
    single_file_config: Optional[str] = Field(
        None, description="for a single-file checkpoint: local folder with the VAE's config.json (path or name)")
    scaling_factor: Optional[float] = Field(None, gt=0, description="latent scale (None: the VAE config's; SD1.5: "
                                                                    "0.18215)")
    sample: bool = Field(False, description="encode to a posterior sample instead of the posterior mean")
    tiling: bool = Field(False, description="encode/decode large frames in overlapping tiles (less memory)")
    slicing: bool = Field(False, description="encode/decode a batch one frame at a time (less memory)")


# Options added after autoencoders had been trained and keyed: in a record or key only when not at
# their default, so that earlier folders keep matching their recipes and trainings keep their keys.
LATER_FIELDS = ("colour_augment",)


class AutoencoderTrainingConfig(BaseModel):
    """A small AutoencoderKL trained on the dataset's frames (SD's VAE objective without LPIPS/GAN)."""

    model_config = ConfigDict(extra="forbid")

    block_out_channels: tuple[int, ...] = Field(
        (16, 32, 64), min_length=1,
        description="channels per encoder level; each level after the first halves the side, so the latent is "
                    "2^(levels - 1) times smaller (default: 4x, 64 px -> 16 x 16)")
    layers_per_block: int = Field(1, ge=1, description="ResNet layers per level")
    latent_channels: int = Field(4, ge=1, description="latent channels (SD: 4)")
    norm_num_groups: int = Field(8, ge=1, description="GroupNorm groups (channels must divide by it)")
    steps: int = Field(800, ge=1, description="optimizer steps")
    batch_size: int = Field(16, ge=1, description="frames per step")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (cosine decay to lr / 10)")
    kl_weight: float = Field(1e-6, ge=0, description="weight of the KL term (SD's VAE: 1e-6)")
    l2_weight: float = Field(1.0, ge=0, description="weight of the pixel MSE beside the L1")
    seed: int = Field(0, ge=0, description="seed of the weights' init and of the frame draws")
    eval_every: int = Field(20, ge=2, description="every N-th training clip (clip-id order) is held out for the "
                                                  "reconstruction check and the latent scale")
    eval_frames: int = Field(256, ge=1, description="held-out frames the check and the latent scale use")
    colour_augment: ColourJitterConfig = Field(
        default_factory=ColourJitterConfig,
        description="per-frame colour gain and offset of the training frames (memo_zoo.train.colour_augment), so "
                    "that the autoencoder also reproduces colours its training frames lack, such as an unseen "
                    "person's background (off by default; eval_recoloured_psnr measures it)")

    @model_validator(mode="after")
    def _groups_divide(self) -> "AutoencoderTrainingConfig":
        for channels in self.block_out_channels:
            if channels % self.norm_num_groups:
                raise ValueError(f"block_out_channels {channels} is not divisible by norm_num_groups "
                                 f"{self.norm_num_groups}")
        return self

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


def without_later_defaults(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (a config's JSON dump) without the ``LATER_FIELDS`` that are at their default."""
    out = dict(document)
    for name in LATER_FIELDS:
        default = AutoencoderTrainingConfig.model_fields[name].get_default(call_default_factory=True)
        if name in out and out[name] == default.model_dump(mode="json"):
            del out[name]
    return out


class TrainVAEConfig(AutoencoderTrainingConfig):
    """Train the recipe's sd_vae (a small AutoencoderKL) on data.dataset's frames (spec A1)."""

    out: Optional[Path] = Field(None, description="where to write the autoencoder folder; default: model.vae.weights")
    size: int = Field(64, ge=8, description="frame side in pixels (the training samples' size; the train and "
                                            "experiment tasks pass their own)")
    fps: float = Field(25.0, gt=0, description="frame rate the clips are decoded at (shares the frame cache with "
                                               "training at the same rate)")
    overwrite: bool = Field(False, description="retrain even when a folder trained with other options is there")

    def for_samples(self, samples: Any) -> TrainVAEConfig:
        """These options at the frame size and rate of the MEMO training samples (``SampleConfig``)."""
        return self.model_copy(update={"size": int(samples.size), "fps": float(samples.fps)})

    def key_document(self) -> dict[str, Any]:
        """What the autoencoder's weights depend on, for the keys of the trainings that read it."""
        return without_later_defaults(self.model_dump(mode="json", exclude={"out", "overwrite"}))

    def target_folder(self, recipe: Any) -> Path:
        """Where the autoencoder goes: ``out``, else ``model.vae.weights``, located by the rule the
        ``sd_vae`` loader reads it with (``memo_zoo.weights``), so training writes where loading looks."""
        if self.out is not None:
            return weights_path(self.out, "train_vae.out")
        vae = recipe.model.vae
        if vae is None or getattr(vae, "kind", None) != "sd_vae":
            raise MemoZooError("training an autoencoder needs model.vae: {kind: sd_vae, weights: PATH} (or the "
                               f"option out); the recipe's model.vae is {getattr(vae, 'kind', None)!r}")
        return weights_path(vae.weights, "model.vae.weights (where train_vae writes the autoencoder)")
