"""Geometry of the MEMO network: ``NetworkConfig`` and its presets ``tiny``, ``sd15`` and ``memo_released``.

Both nets of MEMO (spec A2 Reference Net, A3 Diffusion Net) are diffusers ``UNet2DConditionModel``s
of one geometry. ``sd15`` is exactly Stable Diffusion 1.5's UNet (A1: 4 latent channels at 64x64
for 512 px), so its weights load unchanged (A6); ``tiny`` is a CPU-sized copy with the same block
structure (cross-attention transformers in every resolution level, a cross-attention mid block)
so that every code path of the full model runs in the tests.

``memo_released`` is a second network family: the authors' released MEMO network (its own 3-D
UNet, motion and audio modules; ``memo_zoo.model.released``), its geometry the release's full-size
``config.json`` files (vendored beside that package). ``weights`` names a release (a folder in the
released layout or a hub id in the local Hugging Face cache); its parts' ``config.json`` are then the
authority, and the builder (``memo_zoo.model.released.memo_net.resolve_released_network``) fills the
geometry from them and refuses a field given here that says otherwise.

A field left out (or None) takes the preset's value; after validation every field is set, so a
dumped config reloads to the same network whatever the preset table becomes later. The one
exception is ``memo_released`` with ``weights``: fields left out stay None until the release's
files fill them when the network is built (the files, not this table, are the truth there).

It is the recipe's ``model.network`` section, so it lives with the recipe schema, below the model
code that builds from it (the layers in docs/architecture.md: model may import recipe, never the
reverse).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

DownBlock = Literal["CrossAttnDownBlock2D", "DownBlock2D"]
UpBlock = Literal["CrossAttnUpBlock2D", "UpBlock2D"]

PRESETS: dict[str, dict[str, Any]] = {
    # SD-like latents of 64 px frames (4 x 8 x 8) by default: benchmarks/memo_net_step.py measured
    # a training step (B=1, 16 frames + 16 motion frames) at 0.25 s on 2 shared CPU cores, but 90 s
    # on pixel-VAE latents (latent_channels=3, 64 x 64), where attention spans 64*64 tokens.
    # 4 heads keep a head 8 wide at 32 channels.
    "tiny": {
        "block_out_channels": (32, 64),
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "layers_per_block": 1,
        "attention_head_dim": 4,
        "norm_num_groups": 8,
        "cross_attention_dim": 32,
        "latent_channels": 4,
        "sample_size": 8,
        "audio_dim": 16,
        "image_embed_dim": 32,
    },
    # SD1.5's unet/config.json; the remaining UNet2DConditionModel defaults equal SD1.5's.
    "sd15": {
        "block_out_channels": (320, 640, 1280, 1280),
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "layers_per_block": 2,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
        "cross_attention_dim": 768,
        "latent_channels": 4,
        "sample_size": 64,
        # §10: wav2vec2-base hidden size; a 512-d face-recognition embedding as image condition.
        "audio_dim": 768,
        "image_embed_dim": 512,
    },
}
# The released MEMO network at full size has SD1.5's geometry (768-d wav2vec2-base audio tokens, a
# 512-d face embedding): the vendored memo_zoo/model/released/full_size_*.config.json, which
# tests/unit/released/test_released_memo_net.py checks agree with it. Block types are named as the
# Reference Net's 2-D blocks; the Diffusion Net's 3-D blocks follow the same layout.
PRESETS["memo_released"] = dict(PRESETS["sd15"])
RELEASED = "memo_released"  # the preset that selects the released network family
# Fields a release's config.json files decide (with weights set, left unset here they are read there).
RELEASED_GEOMETRY = (*PRESETS[RELEASED], "audio_tokens", "image_tokens")

# UNet2DConditionModel options that are not fields: SD1.5's values (which are also diffusers'
# defaults), named so that a pretrained UNet whose weights mean something else (SD2's linear
# projections, upcast attention, a class embedding, ...) is refused rather than silently loaded.
FIXED_UNET: dict[str, Any] = {
    "transformer_layers_per_block": 1,
    "use_linear_projection": False,
    "only_cross_attention": False,
    "upcast_attention": False,
    "num_attention_heads": None,
    "class_embed_type": None,
    "addition_embed_type": None,
    "time_embedding_type": "positional",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "act_fn": "silu",
    "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default",
    "center_input_sample": False,
}


class NetworkConfig(BaseModel):
    """The MEMO network's geometry (spec A1-A5, §10). Unset fields take the preset's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["tiny", "sd15", "memo_released"] = Field(
        "tiny", description="Base geometry: 'sd15' = SD1.5's UNet (A2, A3); 'tiny' = a CPU-sized copy for tests; "
                            "'memo_released' = the authors' released MEMO network (its own family of modules, "
                            "full-size geometry of its config.json; with `weights`, the release's files decide).")
    weights: Optional[str] = Field(
        None, description="memo_released only: the release whose weights (and config.json geometry) the network "
                          "takes: a folder in the released layout (reference_net/, diffusion_net/, image_proj/, ...), "
                          "a name under MEMO_ZOO_WEIGHTS_DIR, or a hub id such as 'memoavatar/memo' already in the "
                          "local Hugging Face cache (never downloaded). null = random weights.")
    released_quirks: bool = Field(
        False, description="memo_released only: reproduce the release's token tiling across the CFG batch (golden "
                           "README Q11, Q12: some reference-net rows and frames read the other guidance branch's "
                           "tokens). False gives every row its own video's tokens.")
    block_out_channels: Optional[tuple[int, ...]] = Field(
        None, description="Channels of each resolution level of the UNet (None: the preset's).")
    down_block_types: Optional[tuple[DownBlock, ...]] = Field(
        None, description="diffusers down-block class per level; CrossAttn* levels hold the MEMO blocks.")
    up_block_types: Optional[tuple[UpBlock, ...]] = Field(
        None, description="diffusers up-block class per level, deepest first.")
    mid_block_type: Literal["UNetMidBlock2DCrossAttn"] = Field(
        "UNetMidBlock2DCrossAttn", description="Mid block: one cross-attention transformer between two ResNets.")
    layers_per_block: Optional[int] = Field(
        None, ge=1, description="ResNet(+transformer) layers per down level; up levels have one more.")
    attention_head_dim: Optional[int] = Field(
        None, ge=1,
        description=("Passed to diffusers' UNet2DConditionModel as is, where it is the NUMBER of heads of the "
                     "spatial attention (a historical misnomer; SD1.5: 8)."))
    norm_num_groups: Optional[int] = Field(None, ge=1, description="GroupNorm groups of the ResNets and transformers.")
    cross_attention_dim: Optional[int] = Field(
        None, ge=1, description="Width of the cross-attention context: the image-condition tokens (A4).")
    latent_channels: Optional[int] = Field(
        None, ge=1,
        description="Channels of the latents in and of the velocity out (A1: 4 for SD's VAE, 3 for the pixel VAE).")
    sample_size: Optional[int] = Field(
        None, ge=1, description="Nominal latent side (diffusers config only; any size divisible by the "
                                "downsampling factor runs).")
    audio_tokens: int = Field(32, ge=1, description="Audio context tokens per video frame (A5).")
    audio_dim: Optional[int] = Field(
        None, ge=1, description="Width of the audio tokens the audio modules read (A5, §10: 768).")
    image_tokens: int = Field(4, ge=1, description="Image-condition tokens the image embedding is projected to (§10: 4).")
    image_embed_dim: Optional[int] = Field(
        None, ge=1, description="Width of the image-encoder embedding fed to the image projector (§10: 512).")
    preconditioning: Literal["none", "linear_skip"] = Field(
        "none",
        description="'none': the UNet's output is the velocity (SD1.5's layout, for its weights, A6). "
                    "'linear_skip': velocity = c_skip(t) z_t + c_out(t) UNet(z_t), where c_skip z_t is the best "
                    "linear guess of v = eps - z0 from z_t for data of std `data_std`, and c_out the std of what is "
                    "left (EDM-style preconditioning for rectified flow, L1); for narrow networks on wide latents "
                    "(tiny on 192-channel pixel patches), which cannot carry the noise through their bottleneck")
    data_std: float = Field(
        0.5, gt=0, description="with linear_skip: the latents' standard deviation (talking_world pixels in [-1, 1]: "
                               "about 0.4)")
    timestep_scale: float = Field(
        1000.0, gt=0,
        description="Flow time t in [0, 1] (L1) is multiplied by this before the UNet's sinusoidal embedding, "
                    "the range SD's time embedding was trained on.")

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "tiny")
        if preset not in PRESETS:
            return data  # the Literal check reports it with the allowed values
        if preset == RELEASED and data.get("weights") is not None:
            return data  # the release's config.json files fill what is left out (module docstring)
        filled = dict(data)
        for key, value in PRESETS[preset].items():
            if filled.get(key) is None:
                filled[key] = value
        return filled

    @model_validator(mode="after")
    def _check_geometry(self) -> "NetworkConfig":
        if self.preset != RELEASED:
            if self.weights is not None:
                raise ValueError(f"weights {self.weights!r}: only preset memo_released loads a release's weights; "
                                 "a network trained with memo-zoo is loaded with --checkpoint")
            if self.released_quirks:
                raise ValueError("released_quirks is an option of preset memo_released only")
        elif self.preconditioning != "none":
            raise ValueError(f"preconditioning {self.preconditioning!r}: the released network predicts the velocity "
                             "itself (preset memo_released takes preconditioning 'none')")
        if self.unresolved():
            return self  # filled from the release's config.json when the network is built
        levels = len(self.block_out_channels)
        if levels == 0:
            raise ValueError("block_out_channels must name at least one level")
        if len(self.down_block_types) != levels or len(self.up_block_types) != levels:
            raise ValueError(f"down_block_types ({len(self.down_block_types)}) and up_block_types "
                             f"({len(self.up_block_types)}) need one entry per level ({levels})")
        for channels in self.block_out_channels:
            if channels % self.norm_num_groups:
                raise ValueError(f"channels {channels} are not divisible by norm_num_groups {self.norm_num_groups}")
            if channels % self.attention_head_dim:
                raise ValueError(f"channels {channels} are not divisible by attention_head_dim "
                                 f"{self.attention_head_dim} (the head count)")
        return self

    @model_serializer(mode="wrap")
    def _without_unused_release_fields(self, handler: Any) -> Any:
        # Left out at their defaults: the experiment task hashes model.network into the names of
        # its trainings (memo_zoo.tasks.experiment.training_key), and a field added for the released
        # family must not rename every existing training.
        data = handler(self)
        if isinstance(data, dict):
            if self.weights is None:
                data.pop("weights", None)
            if not self.released_quirks:
                data.pop("released_quirks", None)
        return data

    def unresolved(self) -> bool:
        """True for ``memo_released`` with ``weights`` while geometry fields still wait for the release's files."""
        return self.preset == RELEASED and any(getattr(self, name) is None for name in PRESETS[RELEASED])

    def unet_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``diffusers.UNet2DConditionModel`` for this geometry."""
        return {
            "sample_size": self.sample_size,
            "in_channels": self.latent_channels,
            "out_channels": self.latent_channels,
            "block_out_channels": tuple(self.block_out_channels),
            "down_block_types": tuple(self.down_block_types),
            "up_block_types": tuple(self.up_block_types),
            "mid_block_type": self.mid_block_type,
            "layers_per_block": self.layers_per_block,
            "attention_head_dim": self.attention_head_dim,
            "norm_num_groups": self.norm_num_groups,
            "cross_attention_dim": self.cross_attention_dim,
            **FIXED_UNET,
        }

    def geometry_mismatches(self, unet_config: dict[str, Any]) -> list[str]:
        """``'field: ours vs theirs'`` for every geometry field a UNet config.json disagrees on."""
        ours = self.unet_kwargs()
        problems = []
        for key, mine in ours.items():
            if key == "sample_size":
                continue  # nominal only: it shapes no weight
            theirs = unet_config.get(key, _UNET_DEFAULTS.get(key, FIXED_UNET.get(key)))
            if isinstance(theirs, list):
                theirs = tuple(theirs)
            if theirs != mine:
                problems.append(f"{key}: network config has {mine!r}, the UNet has {theirs!r}")
        return problems


# UNet2DConditionModel's own defaults, for config.json files that leave a field out.
_UNET_DEFAULTS: dict[str, Any] = {
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": PRESETS["sd15"]["down_block_types"],
    "up_block_types": PRESETS["sd15"]["up_block_types"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "layers_per_block": 2,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "cross_attention_dim": 1280,
    "in_channels": 4,
    "out_channels": 4,
}
