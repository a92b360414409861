"""The ``config.json`` of the release's two UNets, read field by field (issue 18; golden README Q2, Q9, Q16).

``ReleasedReferenceNetConfig`` is ``reference_net/config.json`` (the Reference Net, A2: an SD1.5
``UNet2DConditionModel`` config); ``ReleasedUNet3DConfig`` is ``diffusion_net/config.json`` (the
Diffusion Net, A3). Every argument the released classes accept is a field here: it is either
honoured by :mod:`memo_zoo.model.released.reference_unet` / :mod:`memo_zoo.model.released.unet3d`,
or refused by name when the file asks for something memo-zoo does not build (an error naming the
file, the field and the value, never a silently different network). Unknown keys are refused too.

Keys starting with ``_`` are file metadata (``_class_name``, ``_diffusers_version``, ...): diffusers
never passes them to the constructor, so they change nothing. The reference net's ``_out_channels``
/ ``_center_input_sample`` arguments are such names and therefore inert (Q2).

``center_input_sample`` is a *hidden* key in both files (Q2): neither constructor takes it, yet
both forwards read it from the config, so the released code fails without it. It is required here
and honoured (``sample = 2 * sample - 1`` when true).

``released_quirks`` (Q11, Q12) is not a config.json field: it is an option of the networks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memo_zoo.errors import MemoZooError


class ReleasedConfigError(MemoZooError):
    """A released UNet ``config.json`` that memo-zoo cannot build exactly (file, field, value named)."""


# field -> (the only value memo-zoo builds, what a different value would need); for False, null
# (the released "unset") is accepted as well.
_Refusals = dict[str, tuple[Any, str]]

_COMMON_REFUSED: _Refusals = {
    "dual_cross_attention": (False, "dual cross-attention transformers (the released 3-D blocks raise on it too)"),
    "use_linear_projection": (False, "Linear proj_in/proj_out in the spatial transformers"),
    "class_embed_type": (None, "a class embedding added to the time embedding"),
    "num_class_embeds": (None, "a class embedding table added to the time embedding"),
    "resnet_time_scale_shift": ("default", "scale/shift time conditioning in the resnets"),
    "act_fn": ("silu", "a resnet non-linearity other than SiLU"),
}


class _ReleasedConfig(BaseModel):
    """Shared reading: metadata keys, unknown keys and refused values become one clear error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    CLASS_NAME: ClassVar[str] = ""
    REFUSED: ClassVar[_Refusals] = {}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "config.json"):
        """Validate a parsed ``config.json``; ``source`` names the file in every error."""
        if not isinstance(data, Mapping):
            raise ReleasedConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        class_name = data.get("_class_name", cls.CLASS_NAME)
        if class_name != cls.CLASS_NAME:
            raise ReleasedConfigError(f"{source}: _class_name is {class_name!r}; this reader is for {cls.CLASS_NAME!r}")
        fields = {k: v for k, v in data.items() if not str(k).startswith("_")}
        try:
            config = cls.model_validate(fields)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: "
                + ("unknown key (not an argument of the released class)" if e["type"] == "extra_forbidden" else e["msg"])
                for e in err.errors())
            raise ReleasedConfigError(f"{source}: {problems}") from None
        for name, (allowed, what) in cls.REFUSED.items():
            value = getattr(config, name)
            values = value if isinstance(value, list) else [value]
            if any(v != allowed and not (allowed is False and v is None) for v in values):
                raise ReleasedConfigError(
                    f"{source}: {name}={value!r} is not supported: memo-zoo's released network does not build "
                    f"{what}; only {name}={allowed!r}")
        config._check(source)
        return config

    @classmethod
    def from_json(cls, path: str | Path):
        """Read and validate a ``config.json`` file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ReleasedConfigError(f"{path}: no such file") from None
        except json.JSONDecodeError as err:
            raise ReleasedConfigError(f"{path}: not valid JSON ({err})") from None
        return cls.from_mapping(data, str(path))

    def _check(self, source: str) -> None:
        levels = len(self.block_out_channels)
        if len(self.down_block_types) != levels or len(self.up_block_types) != levels:
            raise ReleasedConfigError(
                f"{source}: down_block_types ({len(self.down_block_types)}), up_block_types "
                f"({len(self.up_block_types)}) and block_out_channels ({levels}) must have the same length")
        heads = self.heads_per_level
        if len(heads) != levels:
            raise ReleasedConfigError(f"{source}: attention_head_dim has {len(heads)} entries for {levels} levels")
        for channels, n in zip(self.block_out_channels, heads):
            if channels % n:
                raise ReleasedConfigError(
                    f"{source}: attention_head_dim (= number of heads, Q16) {n} does not divide width {channels}")
            if channels % self.norm_num_groups:
                raise ReleasedConfigError(
                    f"{source}: norm_num_groups {self.norm_num_groups} does not divide width {channels}")

    @property
    def heads_per_level(self) -> list[int]:
        """Attention heads per down level (Q16: ``attention_head_dim`` is the number of heads)."""
        if isinstance(self.attention_head_dim, int):
            return [self.attention_head_dim] * len(self.block_out_channels)
        return list(self.attention_head_dim)

    @property
    def time_embed_dim(self) -> int:
        """Width of the time embedding: 4 x the first level's width (SD1.5)."""
        return 4 * self.block_out_channels[0]


class ReleasedReferenceNetConfig(_ReleasedConfig):
    """``reference_net/config.json``: the release's ``memo.models.unet_2d_condition.UNet2DConditionModel``."""

    CLASS_NAME: ClassVar[str] = "UNet2DConditionModel"
    REFUSED: ClassVar[_Refusals] = {
        **_COMMON_REFUSED,
        "only_cross_attention": (False, "cross-attention-only transformers"),
        "transformer_layers_per_block": (1, "more than one transformer per site (the Diffusion Net reads layer 0 only)"),
        "reverse_transformer_layers_per_block": (None, "per-level transformer depths"),
        "encoder_hid_dim": (None, "a projection of the encoder hidden states"),
        "encoder_hid_dim_type": (None, "a projection of the encoder hidden states"),
        "num_attention_heads": (None, "num_attention_heads (the released class raises on it; use attention_head_dim)"),
        "addition_embed_type": (None, "an additional (text/image/time) embedding"),
        "time_embedding_type": ("positional", "a Fourier time embedding"),
        "time_embedding_dim": (None, "a time embedding width other than 4 x block_out_channels[0]"),
        "time_embedding_act_fn": (None, "an activation after the time embedding"),
        "timestep_post_act": (None, "an activation inside the time embedding"),
        "time_cond_proj_dim": (None, "a timestep-conditioning projection"),
        "projection_class_embeddings_input_dim": (None, "a projected class embedding"),
        "attention_type": ("default", "gated (GLIGEN) attention"),
        "class_embeddings_concat": (False, "class embeddings concatenated to the time embedding"),
        "mid_block_only_cross_attention": (False, "a cross-attention-only mid block"),
    }

    sample_size: int | list[int] | None = Field(None, description="Nominal latent size; informative only.")
    in_channels: int = Field(4, ge=1, description="Latent channels of the input.")
    out_channels: int = Field(
        4, description="Hidden key of SD1.5 configs: the released class has no conv_out, so it has no effect.")
    center_input_sample: bool = Field(description="Hidden key read by the released forward (Q2): input -> 2x-1 when true.")
    flip_sin_to_cos: bool = Field(True, description="Sinusoidal time embedding order: [cos, sin] when true.")
    freq_shift: int = Field(0, description="Frequency shift of the sinusoidal time embedding.")
    down_block_types: list[str] = Field(description="One of CrossAttnDownBlock2D / DownBlock2D per level.")
    mid_block_type: str = Field("UNetMidBlock2DCrossAttn", description="Only UNetMidBlock2DCrossAttn is built.")
    up_block_types: list[str] = Field(description="One of UpBlock2D / CrossAttnUpBlock2D per level.")
    only_cross_attention: bool | list[bool] = Field(False, description="Refused unless false.")
    block_out_channels: list[int] = Field(description="Width of each level.")
    layers_per_block: int = Field(2, ge=1, description="Resnets per down level (up levels have one more).")
    downsample_padding: int = Field(1, ge=0, description="Padding of the stride-2 downsampling convolutions.")
    mid_block_scale_factor: float = Field(1.0, description="Output divisor of the mid block's resnets.")
    dropout: float = Field(0.0, ge=0, description="Dropout in resnets/attention (no effect in eval).")
    act_fn: str = Field("silu", description="Resnet non-linearity; only silu.")
    norm_num_groups: int = Field(32, ge=1, description="GroupNorm groups of resnets and spatial transformers.")
    norm_eps: float = Field(1e-5, gt=0, description="Resnet GroupNorm epsilon.")
    cross_attention_dim: int = Field(1280, ge=1, description="Width of the image tokens (attn2 keys/values).")
    transformer_layers_per_block: int = Field(1, description="Refused unless 1.")
    reverse_transformer_layers_per_block: list[int] | None = Field(None, description="Refused unless null.")
    encoder_hid_dim: int | None = Field(None, description="Refused unless null.")
    encoder_hid_dim_type: str | None = Field(None, description="Refused unless null.")
    attention_head_dim: int | list[int] = Field(8, description="Number of attention heads per level (Q16).")
    num_attention_heads: int | list[int] | None = Field(None, description="Refused unless null (the release raises).")
    dual_cross_attention: bool = Field(False, description="Refused unless false.")
    use_linear_projection: bool = Field(False, description="Refused unless false.")
    class_embed_type: str | None = Field(None, description="Refused unless null.")
    addition_embed_type: str | None = Field(None, description="Refused unless null.")
    addition_time_embed_dim: int | None = Field(None, description="Only read with addition_embed_type; no effect.")
    num_class_embeds: int | None = Field(None, description="Refused unless null.")
    upcast_attention: bool = Field(False, description="Compute attention scores in float32 (half-precision runs).")
    resnet_time_scale_shift: str = Field("default", description="Refused unless 'default'.")
    time_embedding_type: str = Field("positional", description="Refused unless 'positional'.")
    time_embedding_dim: int | None = Field(None, description="Refused unless null.")
    time_embedding_act_fn: str | None = Field(None, description="Refused unless null.")
    timestep_post_act: str | None = Field(None, description="Refused unless null.")
    time_cond_proj_dim: int | None = Field(None, description="Refused unless null.")
    conv_in_kernel: int = Field(3, ge=1, description="Kernel size of conv_in (odd; padding (k-1)/2).")
    projection_class_embeddings_input_dim: int | None = Field(None, description="Refused unless null.")
    attention_type: str = Field("default", description="Refused unless 'default'.")
    class_embeddings_concat: bool = Field(False, description="Refused unless false.")
    mid_block_only_cross_attention: bool | None = Field(None, description="Refused unless null.")
    addition_embed_type_num_heads: int = Field(64, description="Only read with addition_embed_type; no effect.")

    def _check(self, source: str) -> None:
        super()._check(source)
        for name, allowed in (("down_block_types", {"CrossAttnDownBlock2D", "DownBlock2D"}),
                              ("up_block_types", {"CrossAttnUpBlock2D", "UpBlock2D"})):
            for i, kind in enumerate(getattr(self, name)):
                if kind not in allowed:
                    raise ReleasedConfigError(f"{source}: {name}[{i}]={kind!r}; expected one of {sorted(allowed)}")
        if self.mid_block_type != "UNetMidBlock2DCrossAttn":
            raise ReleasedConfigError(
                f"{source}: mid_block_type={self.mid_block_type!r}; only 'UNetMidBlock2DCrossAttn' is built "
                "(the Diffusion Net reads the mid block's reference features)")
        if self.conv_in_kernel % 2 == 0:
            raise ReleasedConfigError(f"{source}: conv_in_kernel={self.conv_in_kernel} must be odd")


class ReleasedUNet3DConfig(_ReleasedConfig):
    """``diffusion_net/config.json``: the release's ``memo.models.unet_3d.UNet3DConditionModel``.

    ``motion_module_kwargs`` and ``emo_drop_rate`` describe the motion and audio modules, which
    the zoo builds through its temporal / audio_fusion factories: the code that makes those
    factories reads them from here (:meth:`motion_kwargs`).
    """

    CLASS_NAME: ClassVar[str] = "UNet3DConditionModel"
    REFUSED: ClassVar[_Refusals] = {
        **_COMMON_REFUSED,
        "only_cross_attention": (False, "cross-attention-only transformers"),
        # false and null both mean "none"
        "unet_use_temporal_attention": (False, "the per-block temporal attention (attn_temp / norm_temp)"),
    }
    # The arguments of the release's MemoryLinearAttnTemporalModule (after in_channels), with its defaults.
    MOTION_DEFAULTS: ClassVar[dict[str, Any]] = {
        "num_attention_heads": 8, "num_transformer_block": 2, "attention_block_types": ["Temporal_Self", "Temporal_Self"],
        "temporal_position_encoding": False, "temporal_position_encoding_max_len": 24,
        "temporal_attention_dim_div": 1, "zero_initialize": True}

    sample_size: int | list[int] | None = Field(None, description="Nominal latent size; informative only.")
    in_channels: int = Field(8, ge=1, description="Latent channels of the input (class default 8; the release uses 4).")
    out_channels: int = Field(8, ge=1, description="Channels of the predicted velocity.")
    center_input_sample: bool = Field(description="Hidden key read by the released forward (Q2): input -> 2x-1 when true.")
    flip_sin_to_cos: bool = Field(True, description="Sinusoidal time embedding order: [cos, sin] when true.")
    freq_shift: int = Field(0, description="Frequency shift of the sinusoidal time embedding.")
    down_block_types: list[str] = Field(description="One of CrossAttnDownBlock3D / DownBlock3D per level.")
    mid_block_type: str = Field("UNetMidBlock3DCrossAttn", description="Only UNetMidBlock3DCrossAttn exists.")
    up_block_types: list[str] = Field(description="One of UpBlock3D / CrossAttnUpBlock3D per level.")
    only_cross_attention: bool | list[bool] = Field(False, description="Refused unless false.")
    block_out_channels: list[int] = Field(description="Width of each level.")
    layers_per_block: int = Field(2, ge=1, description="Resnets per down level (up levels have one more).")
    downsample_padding: int = Field(1, ge=0, description="Padding of the stride-2 downsampling convolutions.")
    mid_block_scale_factor: float = Field(1.0, description="Output divisor of the mid block's resnets.")
    act_fn: str = Field("silu", description="Resnet non-linearity; only silu.")
    norm_num_groups: int = Field(
        32, ge=1, description="GroupNorm groups of resnets, spatial and audio transformers (not the motion modules, Q9).")
    norm_eps: float = Field(1e-5, gt=0, description="Resnet / conv_norm_out GroupNorm epsilon (Q9).")
    cross_attention_dim: int = Field(1280, ge=1, description="Width of the image tokens (attn2 keys/values).")
    attention_head_dim: int | list[int] = Field(8, description="Number of attention heads per level (Q16).")
    dual_cross_attention: bool = Field(False, description="Refused unless false.")
    use_linear_projection: bool = Field(False, description="Refused unless false.")
    class_embed_type: str | None = Field(None, description="Refused unless null.")
    num_class_embeds: int | None = Field(None, description="Refused unless null.")
    upcast_attention: bool = Field(False, description="Compute attention scores in float32 (half-precision runs).")
    resnet_time_scale_shift: str = Field("default", description="Refused unless 'default'.")
    use_inflated_groupnorm: bool = Field(
        False, description="Resnet/conv_norm_out GroupNorm per frame (true) or pooled over frames (false; the "
                           "class default) (Q9).")
    motion_module_resolutions: list[int] = Field(
        [1, 2, 4, 8], description="Down level i / up level i get motion modules when 2**i / 2**(3-i) is listed; "
                                  "the mid block always has one.")
    motion_module_kwargs: dict[str, Any] | None = Field(
        None, description="Arguments of every motion module (heads, blocks, PE).")
    unet_use_cross_frame_attention: bool | None = Field(
        None, description="Stored by the released blocks and never read: no effect.")
    unet_use_temporal_attention: bool | None = Field(None, description="Refused unless false/null.")
    audio_attention_dim: int = Field(768, ge=1, description="Width of the audio tokens (audio modules, Q6).")
    emo_drop_rate: float = Field(0.3, ge=0, description="> 0 adds the null-emotion row to the emotion tables (Q8).")

    def _check(self, source: str) -> None:
        super()._check(source)
        for name, allowed in (("down_block_types", {"CrossAttnDownBlock3D", "DownBlock3D"}),
                              ("up_block_types", {"CrossAttnUpBlock3D", "UpBlock3D"})):
            for i, kind in enumerate(getattr(self, name)):
                kind = kind[7:] if kind.startswith("UNetRes") else kind  # the release strips this prefix
                if kind not in allowed:
                    raise ReleasedConfigError(f"{source}: {name}[{i}]={kind!r}; expected one of {sorted(allowed)}")
        if self.mid_block_type != "UNetMidBlock3DCrossAttn":
            raise ReleasedConfigError(f"{source}: mid_block_type={self.mid_block_type!r}; only 'UNetMidBlock3DCrossAttn'")
        if self.motion_module_kwargs is None:
            raise ReleasedConfigError(
                f"{source}: motion_module_kwargs is missing; the released mid block always builds a motion module from it")
        unknown = sorted(set(self.motion_module_kwargs) - set(self.MOTION_DEFAULTS))
        if unknown:
            raise ReleasedConfigError(
                f"{source}: motion_module_kwargs has unknown keys {unknown}; known: {sorted(self.MOTION_DEFAULTS)}")
        types = self.motion_kwargs["attention_block_types"]
        if any(t != "Temporal_Self" for t in types):
            raise ReleasedConfigError(f"{source}: motion_module_kwargs.attention_block_types={types!r}; the released "
                                      "motion module only builds 'Temporal_Self' blocks")
        if len(self.block_out_channels) != 4:
            # The release numbers up-level resolutions as 2**(3 - i): four levels are baked in.
            raise ReleasedConfigError(
                f"{source}: block_out_channels has {len(self.block_out_channels)} levels; the released net needs 4")

    def kind(self, name: str, index: int) -> str:
        """``down_block_types[index]`` / ``up_block_types[index]`` without the ``UNetRes`` prefix."""
        kind = getattr(self, name)[index]
        return kind[7:] if kind.startswith("UNetRes") else kind

    @property
    def motion_kwargs(self) -> dict[str, Any]:
        """Every motion-module argument: ``motion_module_kwargs`` over the released defaults (for the
        code that makes the temporal factory)."""
        return {**self.MOTION_DEFAULTS, **(self.motion_module_kwargs or {})}


def motion_module_options(motion_kwargs: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """The ``motion_module`` temporal options a release's ``motion_module_kwargs`` (released defaults
    filled in: ``ReleasedUNet3DConfig.motion_kwargs``) implies, each with the released field it
    comes from. The one mapping of the two vocabularies: the network builder, export and the parity
    tests all read it. ``zero_initialize`` only initialises (the weights are loaded)."""
    kwargs = dict(motion_kwargs)
    types = list(kwargs.pop("attention_block_types"))
    kwargs.pop("zero_initialize", None)
    options = {
        "heads": (kwargs.pop("num_attention_heads"), "motion_module_kwargs.num_attention_heads"),
        "transformer_blocks": (kwargs.pop("num_transformer_block"), "motion_module_kwargs.num_transformer_block"),
        "attention_blocks": (len(types), "len(motion_module_kwargs.attention_block_types)"),
        "pe": (bool(kwargs.pop("temporal_position_encoding")), "motion_module_kwargs.temporal_position_encoding"),
        "pe_max_len": (kwargs.pop("temporal_position_encoding_max_len"),
                       "motion_module_kwargs.temporal_position_encoding_max_len"),
        "dim_div": (kwargs.pop("temporal_attention_dim_div"), "motion_module_kwargs.temporal_attention_dim_div"),
    }
    if kwargs:
        raise ReleasedConfigError(f"motion_module_kwargs fields the motion_module kind does not map: {sorted(kwargs)}")
    return options
