"""``ReleasedMemoNet``: the authors' released MEMO network as one recipe of the zoo (issue 18).

The same API as the zoo's ``MemoNet`` (``memo_zoo.model.memo_net``), argument for argument, so the
generation sampler (``memo_zoo.generate.sampling.ClipSampler``) and the trainer drive it unchanged:

1. ``project_image(embedding)``: the release's ``image_proj`` (A4), (B, E) -> (B, K, D).
2. ``encode_reference(ref_latents, tokens)``: the release's Reference Net (A2) on the reference
   latent, (B, c, h, w) -> one row of features per video (``ReleasedReference.hidden_states``).
3. ``motion_state(motion_latents, tokens, state)``: the Reference Net on the clean motion frames
   (B, Fm, c, h, w), each motion site's features folded into the motion modules' memories (T2, T6).
   The release runs its Reference Net once per clip on [reference; Fm past frames] per video and
   hands rows 1..Fm to the motion modules (golden README Q13); the Reference Net's rows do not
   interact, so running the past frames alone is the same computation. With ``released_quirks``
   each row gets the tokens the release's tiling gives it in that [reference; past] layout (Q11).
4. ``forward(latents, t, tokens, audio_tokens, emotion, reference, state, reference_mask)``: the
   velocity (L1). The zoo's flow time t in [0, 1] becomes the release's timestep ``1000 t``
   (``network.timestep_scale``) computed in float32, as diffusers' ``FlowMatchEulerDiscreteScheduler`` does
   (``sigmas * num_train_timesteps``, Q14), so the grid t = 0.5005 reaches the network as
   500.50003 exactly like the release's. ``reference_mask`` False rows are the release's
   unconditional rows (its ``uc_mask``, Q10).

Building (one place decides the geometry, ``resolve_released_network``):

* with ``network.weights`` (a release folder / hub id): each part's ``config.json`` is the
  authority; a ``model.network`` field the recipe set that disagrees with it is an error naming
  the file, the field and both values. A part without ``config.json`` takes the full-size config.
* without weights: the full-size configs vendored here (``full_size_diffusion_net.config.json``
  is the golden set's RECONSTRUCTED diffusion_net config -- the hub file could not be retrieved,
  so it is not the hub file; a user's real release always wins; ``full_size_reference_net.config.json``
  is SD1.5's UNet config), with the geometry fields of ``model.network`` put in.

The motion and audio modules are components (``motion_module`` / ``joint_audio`` kinds): their
options follow from the release's ``diffusion_net/config.json`` (``released_component_configs``:
``motion_module_kwargs`` -> motion options; ``emo_drop_rate`` -> ``null_emotion_row``;
``double_audio_residual`` true, Q7); a value the recipe set explicitly that differs is an error.

Checkpoints: ``save_pretrained`` writes the zoo's format (``memo_net.json`` + ``memo_net.safetensors``)
with ``"family": "memo_released"`` and each part's config, so a training checkpoint reloads without
the release (``memo_zoo.model.memo_net.load_network`` dispatches on the family).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from pydantic import BaseModel, ValidationError
from torch import Tensor, nn

from memo_zoo.errors import MemoZooError
from memo_zoo.model.memo_net import FORMAT, FORMAT_VERSION, SlotFactories, read_weights, save_net_folder
from memo_zoo.model.released.folder import (CONFIG_FILE as PART_CONFIG, load_strict, part_named, part_weights_file,
                                            read_part_config, read_part_state, resolve_release)
from memo_zoo.model.released.reference_unet import ReleasedReferenceNet
from memo_zoo.model.released.small_parts import build_image_projector
from memo_zoo.model.released.unet3d import ReleasedDiffusionNet, ReleasedState
from memo_zoo.model.released.unet_config import (ReleasedReferenceNetConfig, ReleasedUNet3DConfig,
                                                motion_module_options)
from memo_zoo.recipe.network import PRESETS, RELEASED, RELEASED_GEOMETRY, NetworkConfig
from memo_zoo.slots.audio_fusion import AudioFusionFactory
from memo_zoo.slots.temporal import TemporalFactory

FAMILY = RELEASED
NET_PARTS = ("reference_net", "diffusion_net", "image_proj")  # what the network holds (audio_proj: the encoder's)
TEMPORAL_KIND = "motion_module"
AUDIO_FUSION_KIND = "joint_audio"
_HERE = Path(__file__).parent
FULL_SIZE_FILES = {"reference_net": _HERE / "full_size_reference_net.config.json",
                   "diffusion_net": _HERE / "full_size_diffusion_net.config.json"}


@dataclass(frozen=True)
class ReleasedReference:
    """The Reference Net's features of the reference image, one row per video (A2, Q13), named as
    the release's (``down.0.0.0``, ..., ``up.3.2.0``): what ``forward`` reads as ``reference``."""

    hidden_states: dict[str, Tensor]


# ------------------------------------------------------------------------------------ configs


def full_size_config(part: str) -> dict[str, Any]:
    """A part's full-size config as the released class receives it (code defaults filled in):
    the vendored files for the two UNets, the code defaults (Q1) for the small parts."""
    spec = part_named(part)
    if part not in FULL_SIZE_FILES:
        return dict(spec.fields)
    raw = json.loads(FULL_SIZE_FILES[part].read_text(encoding="utf-8"))
    given = {k: v for k, v in raw.items() if not k.startswith("_")}
    config = {name: given.get(name, default) for name, default in spec.fields.items()}
    config.update({k: given[k] for k in spec.hidden if k in given})
    return config


def _part_config(folder: Path, part: str) -> tuple[dict[str, Any], str]:
    """(config, the file it came from) of a release's part; its full-size config when the release
    has no ``config.json`` for it."""
    path = part_named(part).folder(folder) / PART_CONFIG
    if path.is_file():
        return read_part_config(folder, part), str(path)
    return full_size_config(part), f"{path} (absent: the full-size config)"


def _blocks_2d(kinds: list[str]) -> tuple[str, ...]:
    """The Diffusion Net's 3-D block names as the Reference Net's 2-D ones (same layout)."""
    return tuple((k[7:] if k.startswith("UNetRes") else k).replace("3D", "2D") for k in kinds)


def _blocks_3d(kinds: tuple[str, ...]) -> list[str]:
    return [k.replace("2D", "3D") for k in kinds]


def _single_heads(value: int | list[int], source: str) -> int:
    if isinstance(value, int):
        return value
    if len(set(value)) != 1:
        raise MemoZooError(f"{source}: attention_head_dim {value} differs per level; model.network.attention_head_dim "
                           "holds one head count")
    return int(value[0])


def _geometry_of(parts: Mapping[str, Mapping[str, Any]], sources: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """Each ``model.network`` geometry field as the release's files give it: field -> (value, file, key)."""
    diffusion, reference, image = parts["diffusion_net"], parts["reference_net"], parts["image_proj"]
    d, r, i = sources["diffusion_net"], sources["reference_net"], sources["image_proj"]
    values = {
        "block_out_channels": (tuple(diffusion["block_out_channels"]), d, "block_out_channels"),
        "down_block_types": (_blocks_2d(diffusion["down_block_types"]), d, "down_block_types"),
        "up_block_types": (_blocks_2d(diffusion["up_block_types"]), d, "up_block_types"),
        "layers_per_block": (diffusion["layers_per_block"], d, "layers_per_block"),
        "attention_head_dim": (_single_heads(diffusion["attention_head_dim"], d), d, "attention_head_dim"),
        "norm_num_groups": (diffusion["norm_num_groups"], d, "norm_num_groups"),
        "cross_attention_dim": (diffusion["cross_attention_dim"], d, "cross_attention_dim"),
        "latent_channels": (diffusion["in_channels"], d, "in_channels"),
        "sample_size": (diffusion["sample_size"], d, "sample_size"),
        "audio_dim": (diffusion["audio_attention_dim"], d, "audio_attention_dim"),
        "image_embed_dim": (image["clip_embeddings_dim"], i, "clip_embeddings_dim"),
        "image_tokens": (image["clip_extra_context_tokens"], i, "clip_extra_context_tokens"),
    }
    if "audio_proj" in parts:
        values["audio_tokens"] = (parts["audio_proj"]["context_tokens"], sources["audio_proj"], "context_tokens")
    # The two UNets and the projector must agree among themselves: the Diffusion Net reads the
    # Reference Net's features and the projector's tokens.
    for key, theirs in (("block_out_channels", tuple(reference["block_out_channels"])),
                        ("down_block_types", tuple(reference["down_block_types"])),
                        ("up_block_types", tuple(reference["up_block_types"])),
                        ("layers_per_block", reference["layers_per_block"]),
                        ("cross_attention_dim", reference["cross_attention_dim"]),
                        ("latent_channels", reference["in_channels"])):
        if values[key][0] != theirs:
            raise MemoZooError(f"the release's parts disagree: {values[key][1]} gives {values[key][2]} "
                               f"{values[key][0]!r}, {r} gives {theirs!r}")
    if image["cross_attention_dim"] != diffusion["cross_attention_dim"]:
        raise MemoZooError(f"the release's parts disagree: {i} gives cross_attention_dim "
                           f"{image['cross_attention_dim']}, {d} gives {diffusion['cross_attention_dim']}")
    return values


@dataclass(frozen=True)
class ResolvedRelease:
    """A ``memo_released`` network resolved: its complete geometry, each part's config (as the
    released class receives it) and the release folder (None without weights)."""

    network: NetworkConfig
    parts: dict[str, dict[str, Any]]
    sources: dict[str, str]
    folder: Path | None


def resolve_released_network(network: NetworkConfig) -> ResolvedRelease:
    """The geometry of a ``memo_released`` network: from the release's files when ``weights`` is
    set (refusing a recipe field that disagrees), else the full-size configs with ``network``'s
    geometry put in; see the module docstring."""
    if network.preset != RELEASED:
        raise MemoZooError(f"model.network.preset is {network.preset!r}, not {RELEASED!r}")
    if network.weights is None:
        return _without_weights(network)
    folder = resolve_release(network.weights)
    parts, sources = {}, {}
    for part in (*NET_PARTS, "audio_proj"):
        if part == "audio_proj" and not (part_named(part).folder(folder) / PART_CONFIG).is_file():
            continue  # the audio projector belongs to the audio encoder; its token count is only a default
        parts[part], sources[part] = _part_config(folder, part)
    values = _geometry_of(parts, sources)
    conflicts = []
    for name, (value, source, key) in values.items():
        mine = getattr(network, name)
        if name in network.model_fields_set and mine is not None and _normal(mine) != _normal(value):
            conflicts.append(f"model.network.{name} is {_normal(mine)!r} but {source} has {key} {_normal(value)!r}")
    if conflicts:
        raise MemoZooError(f"model.network disagrees with the release {network.weights!r} (its config.json files "
                           "decide the geometry; leave these fields out):\n  " + "\n  ".join(conflicts))
    filled = {name: value for name, (value, _, _) in values.items()}
    data = {**network.model_dump(exclude_unset=True), **filled}
    try:
        resolved = NetworkConfig.model_validate(data)
    except ValidationError as error:
        raise MemoZooError(f"the release {network.weights!r} gives a geometry memo-zoo cannot build:\n"
                           f"{error}") from None
    return ResolvedRelease(resolved, {p: parts[p] for p in NET_PARTS}, {p: sources[p] for p in NET_PARTS}, folder)


def _normal(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _without_weights(network: NetworkConfig) -> ResolvedRelease:
    diffusion, reference = full_size_config("diffusion_net"), full_size_config("reference_net")
    shared = {"block_out_channels": list(network.block_out_channels), "layers_per_block": network.layers_per_block,
              "attention_head_dim": network.attention_head_dim, "norm_num_groups": network.norm_num_groups,
              "cross_attention_dim": network.cross_attention_dim, "in_channels": network.latent_channels,
              "out_channels": network.latent_channels, "sample_size": network.sample_size}
    diffusion.update(shared, audio_attention_dim=network.audio_dim,
                     down_block_types=_blocks_3d(network.down_block_types),
                     up_block_types=_blocks_3d(network.up_block_types))
    reference.update(shared, down_block_types=list(network.down_block_types),
                     up_block_types=list(network.up_block_types))
    image = {"cross_attention_dim": network.cross_attention_dim, "clip_embeddings_dim": network.image_embed_dim,
             "clip_extra_context_tokens": network.image_tokens}
    source = "the full-size config with model.network's geometry"
    return ResolvedRelease(network, {"reference_net": reference, "diffusion_net": diffusion, "image_proj": image},
                           {p: source for p in NET_PARTS}, None)


def _config_and_explicit(value: BaseModel | Mapping[str, Any] | None, kind: str,
                         slot: str) -> tuple[dict[str, Any], set[str]]:
    """A recipe slot value as (``{kind, **options}``, the options it set explicitly)."""
    if value is None:
        return {"kind": kind}, set()
    if isinstance(value, BaseModel):
        data, explicit = value.model_dump(), set(value.model_fields_set)
    else:
        data, explicit = dict(value), set(value)
    data.setdefault("kind", kind)
    if data["kind"] != kind:
        raise MemoZooError(f"model.{slot}.kind is {data['kind']!r}: the released network's weights are those of the "
                           f"{kind!r} kind (leave model.{slot} out, or set kind: {kind})")
    return data, explicit - {"kind"}


def _emotion_classes(folder: Path | None) -> int | None:
    """Emotion classes of the release's audio modules (hard-coded in its code, Q8): the rows of an
    emotion table in its weights less the null row; None when that cannot be read cheaply."""
    if folder is None:
        return None
    try:
        path = part_weights_file(folder, "diffusion_net")
    except MemoZooError:
        return None
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), "pt") as weights:
        table = next((k for k in weights.keys() if k.endswith("class_embedder.embedding_table.weight")), None)
        return None if table is None else int(weights.get_slice(table).get_shape()[0])


def swapped_temporal(temporal: BaseModel | Mapping[str, Any] | None) -> bool:
    """Whether ``model.temporal`` names a kind other than the release's motion module."""
    if temporal is None:
        return False
    kind = temporal.kind if isinstance(temporal, BaseModel) else dict(temporal).get("kind", TEMPORAL_KIND)
    return kind != TEMPORAL_KIND


def released_component_configs(resolved: ResolvedRelease, temporal: BaseModel | Mapping[str, Any] | None,
                               audio_fusion: BaseModel | Mapping[str, Any] | None
                               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``model.temporal`` / ``model.audio_fusion`` (None = the released kinds) with the options the
    release's ``diffusion_net/config.json`` implies; an explicit recipe value that differs is an error
    naming the file, the field and both values."""
    diffusion = ReleasedUNet3DConfig.from_mapping(resolved.parts["diffusion_net"], resolved.sources["diffusion_net"])
    source = resolved.sources["diffusion_net"]
    motion = diffusion.motion_kwargs
    derived_temporal = motion_module_options(motion)
    null_row = diffusion.emo_drop_rate > 0
    derived_audio = {"null_emotion_row": (null_row, f"emo_drop_rate ({diffusion.emo_drop_rate} > 0)"),
                     "double_audio_residual": (True, "the released audio stream (README Q7)")}
    rows = _emotion_classes(resolved.folder)
    if rows is not None:
        derived_audio["num_emotion_classes"] = (rows - int(null_row), "the emotion tables of its weights")
    out = []
    for slot, value, kind, derived in (("temporal", temporal, TEMPORAL_KIND, derived_temporal),
                                       ("audio_fusion", audio_fusion, AUDIO_FUSION_KIND, derived_audio)):
        if slot == "temporal" and swapped_temporal(value):
            # Another temporal kind (a swap): its own options; build() starts it from the release's
            # motion modules where shapes allow (init_from_release).
            out.append(value.model_dump() if isinstance(value, BaseModel) else dict(value))
            continue
        data, explicit = _config_and_explicit(value, kind, slot)
        wrong = [f"model.{slot}.{name} is {data[name]!r} but {source} gives {what} = {want!r}"
                 for name, (want, what) in derived.items() if name in explicit and data[name] != want]
        if wrong:
            raise MemoZooError("the recipe's released components disagree with the release:\n  " + "\n  ".join(wrong))
        data.update({name: want for name, (want, _) in derived.items()})
        out.append(data)
    return out[0], out[1]


# ------------------------------------------------------------------------------------ the network


class ReleasedMemoNet(nn.Module):
    """The released MEMO network with ``MemoNet``'s API; see the module docstring."""

    family = FAMILY

    def __init__(self, resolved: ResolvedRelease, temporal: TemporalFactory, audio_fusion: AudioFusionFactory) -> None:
        super().__init__()
        network = resolved.network
        self.network_config = network
        self.released_parts = resolved.parts
        self.released_quirks = network.released_quirks
        self.temporal_config = temporal.config
        self.audio_fusion_config = audio_fusion.config
        self.image_proj = build_image_projector(resolved.parts["image_proj"])
        self.reference_net = ReleasedReferenceNet(
            ReleasedReferenceNetConfig.from_mapping(resolved.parts["reference_net"], resolved.sources["reference_net"]),
            released_quirks=network.released_quirks)
        self.diffusion_net = ReleasedDiffusionNet(
            ReleasedUNet3DConfig.from_mapping(resolved.parts["diffusion_net"], resolved.sources["diffusion_net"]),
            temporal, audio_fusion, released_quirks=network.released_quirks)

    @property
    def emotion_classes(self) -> int:
        """Emotion classes the audio modules embed (the "no emotion" row is this index)."""
        return int(self.audio_fusion_config.num_emotion_classes)

    # ---- per-clip flow ---------------------------------------------------------------------

    def project_image(self, embedding: Tensor) -> Tensor:
        """(B, image_embed_dim) -> (B, image_tokens, cross_attention_dim) (A4)."""
        return self.image_proj(embedding)

    def _zero_time(self, like: Tensor) -> Tensor:
        return torch.zeros((), dtype=torch.float32, device=like.device)  # the release's zeros_like(t) (Q13)

    def encode_reference(self, ref_latents: Tensor, image_tokens: Tensor) -> ReleasedReference:
        """Reference Net on the clean reference latents (B, c, h, w) with each video's tokens (B, K, D) (A2).

        In the release the reference image is row 0 of each video's [reference; Fm past] block, so
        with its tiling (Q11) video v's row reads the tokens of video v * (1 + Fm) mod B: v itself
        for its CFG batch (B = 2, Fm = 16); each video's own tokens are used here.
        """
        if ref_latents.dim() != 4:
            raise ValueError(f"reference latents must be (B, c, h, w); got {tuple(ref_latents.shape)}")
        if image_tokens.shape[0] != ref_latents.shape[0]:
            raise ValueError(f"{ref_latents.shape[0]} reference latents but {image_tokens.shape[0]} token sets")
        return ReleasedReference(dict(self.reference_net(ref_latents, self._zero_time(ref_latents), image_tokens)))

    def new_state(self, batch: int) -> ReleasedState:
        """Empty motion-module memories for ``batch`` videos."""
        return self.diffusion_net.new_state(batch)

    def _motion_tokens(self, image_tokens: Tensor, frames: int) -> Tensor:
        """Image tokens of each of the B * Fm motion rows: the video's own, or (``released_quirks``)
        those the release's tiling gives past frame k of video v in its [reference; past] rows:
        row v (1 + Fm) + 1 + k reads video (v (1 + Fm) + 1 + k) mod B (Q11)."""
        b = image_tokens.shape[0]
        if not self.released_quirks:
            return image_tokens.repeat_interleave(frames, dim=0)
        video = torch.arange(b).repeat_interleave(frames)
        k = torch.arange(frames).repeat(b)
        return image_tokens[((video * (1 + frames) + 1 + k) % b).to(image_tokens.device)]

    def motion_state(self, motion_latents: Tensor, image_tokens: Tensor,
                     state: ReleasedState | None = None) -> ReleasedState:
        """Fold the clean motion frames (B, Fm, c, h, w) into ``state`` (T2, T6): the Reference Net on
        the frames, each motion site's features (Q13) folded into its memory; returns a new state."""
        if motion_latents.dim() != 5:
            raise ValueError(f"motion latents must be (B, Fm, c, h, w); got {tuple(motion_latents.shape)}")
        b, fm = motion_latents.shape[:2]
        rows = motion_latents.reshape(b * fm, *motion_latents.shape[2:])
        features = self.reference_net(rows, self._zero_time(rows), self._motion_tokens(image_tokens, fm))
        net = self.diffusion_net
        sizes = net.level_sizes(tuple(motion_latents.shape[-2:]))
        motion = [net._video_rows(features, site.feature, b, *sizes[site.level], site.channels)
                  for site in net.motion_sites]
        return net.update_state(self.new_state(b) if state is None else state, motion)

    def forward(self, latents: Tensor, timestep: Tensor | float, image_tokens: Tensor,
                audio_tokens: Tensor | None = None, emotion: Tensor | None = None,
                reference: ReleasedReference | Mapping[str, Tensor] | None = None,
                state: ReleasedState | None = None, reference_mask: Tensor | None = None) -> Tensor:
        """Velocity (B, F, c, h, w) of ``latents`` (B, F, c, h, w) at flow time ``timestep`` in [0, 1]
        (a scalar or (B,)); the other arguments as ``MemoNet.forward``. No audio = zero tokens
        (the release's unconditional audio, Q7); ``reference_mask`` False = unconditional row (Q10)."""
        # Q14: the release's timestep is float32(sigma) * 1000 in float32 (network.timestep_scale: 1000)
        t = torch.as_tensor(timestep, device=latents.device).to(torch.float32) * self.network_config.timestep_scale
        if audio_tokens is None:
            b, f = latents.shape[:2]
            audio_tokens = latents.new_zeros(b, f, self.network_config.audio_tokens, self.network_config.audio_dim)
        if isinstance(reference, ReleasedReference):
            reference = reference.hidden_states
        uncond = None if reference_mask is None else ~reference_mask.to(torch.bool)
        return self.diffusion_net(latents, t, image_tokens, audio_tokens, emotion, reference, state, uncond)

    # ---- training switches -----------------------------------------------------------------

    def enable_gradient_checkpointing(self) -> None:
        raise MemoZooError("gradient checkpointing is not available for the memo_released network")

    def disable_gradient_checkpointing(self) -> None:
        """Nothing to undo: the released network never checkpoints."""

    # ---- saving and loading ----------------------------------------------------------------

    def configs(self) -> dict[str, Any]:
        """Everything needed to rebuild this net without the release, as JSON-ready data."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "family": FAMILY,
            "network": self.network_config.model_dump(mode="json"),
            "temporal": self.temporal_config.model_dump(mode="json"),
            "audio_fusion": self.audio_fusion_config.model_dump(mode="json"),
            "released": self.released_parts,
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``memo_net.json`` + ``memo_net.safetensors`` into ``directory`` (created): the
        zoo's checkpoint format, so a training checkpoint reloads without the release."""
        return save_net_folder(self, directory)

    def load_weights(self, path: str | Path, exclude: tuple[str, ...] = ()) -> None:
        """Load a ``memo_net.safetensors`` strictly (every missing, unexpected or mis-shaped key named);
        ``exclude``: name prefixes that keep this net's values."""
        state = {k: v for k, v in read_weights(path).items() if not k.startswith(exclude)}
        if not exclude:
            load_strict(self, state, str(path))
            left = [name for name, t in [*self.named_parameters(), *self.named_buffers()] if t.is_meta]
            if left:
                raise MemoZooError(f"{path}: {len(left)} tensor(s) of the network are not stored in it: "
                                   f"{', '.join(left[:5])}")
            return
        own = {k for k in self.state_dict() if not k.startswith(exclude)}
        problems = sorted(own ^ set(state))
        if problems:
            raise MemoZooError(f"{path} does not match the network: {', '.join(problems[:20])}")
        self.load_state_dict(state, strict=False)

    @classmethod
    def build(cls, network: NetworkConfig, temporal: BaseModel | Mapping[str, Any] | None,
              audio_fusion: BaseModel | Mapping[str, Any] | None, factories: SlotFactories) -> "ReleasedMemoNet":
        """The network a recipe's ``model`` section asks for: with ``network.weights`` the release
        loaded strictly (built on the meta device, so nothing is allocated twice), else random weights."""
        resolved = resolve_released_network(network)
        temporal_config, audio_config = released_component_configs(resolved, temporal, audio_fusion)
        if resolved.folder is not None and swapped_temporal(temporal):
            from memo_zoo.model.released.init_from_release import build_with_temporal

            net, report = build_with_temporal(network, temporal, audio_fusion, factories)
            net.release_init = report  # logged by the trainer (release_init.json), shown by generate
            return net
        temporal_factory = factories("temporal", temporal_config)
        audio_factory = factories("audio_fusion", audio_config)
        if resolved.folder is None:
            return cls(resolved, temporal_factory, audio_factory)
        with _parameters_on_meta():
            net = cls(resolved, temporal_factory, audio_factory)
        for part in NET_PARTS:
            load_strict(getattr(net, part), read_part_state(resolved.folder, part),
                        str(part_weights_file(resolved.folder, part)))
        left = [name for name, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
        if left:
            raise MemoZooError(f"release {network.weights!r}: {len(left)} tensor(s) are not stored in it and were "
                               f"left unbuilt: {', '.join(left[:5])}")
        return net.eval()

    @classmethod
    def from_release(cls, reference: str | Path, temporal: BaseModel | Mapping[str, Any] | None = None,
                     audio_fusion: BaseModel | Mapping[str, Any] | None = None, *, factories: SlotFactories,
                     released_quirks: bool = False) -> "ReleasedMemoNet":
        """A release (a folder, a name under MEMO_ZOO_WEIGHTS_DIR or a hub id in the local Hugging Face
        cache) as a network: ``build`` with ``model.network: {preset: memo_released, weights: reference}``.
        ``temporal`` / ``audio_fusion``: None = the release's kinds with its options."""
        network = NetworkConfig(preset=RELEASED, weights=str(reference), released_quirks=released_quirks)
        return cls.build(network, temporal, audio_fusion, factories)

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any], factories: SlotFactories, source: str,
                   network: NetworkConfig | Mapping[str, Any] | None = None,
                   temporal: BaseModel | Mapping[str, Any] | None = None,
                   audio_fusion: BaseModel | Mapping[str, Any] | None = None) -> "ReleasedMemoNet":
        """The network of a saved ``memo_net.json`` (``saved``, read from ``source``), weights not yet
        loaded; configs given here replace the saved ones (the weights must then still fit)."""
        parts = saved.get("released")
        if not isinstance(parts, dict) or any(not isinstance(parts.get(p), dict) for p in NET_PARTS):
            raise MemoZooError(f"{source}: family {FAMILY} but no 'released' part configs "
                               f"({', '.join(NET_PARTS)}); the file is damaged")
        try:
            config = NetworkConfig.model_validate(saved["network"] if network is None else
                                                  (network.model_dump() if isinstance(network, BaseModel)
                                                   else dict(network)))
        except ValidationError as error:
            raise MemoZooError(f"{source}: invalid network config:\n{error}") from None
        if config.unresolved():
            config = NetworkConfig.model_validate(saved["network"])  # the recipe's weights: the saved geometry
        resolved = ResolvedRelease(config, {p: dict(parts[p]) for p in NET_PARTS},
                                   {p: f"{source} (released.{p})" for p in NET_PARTS}, None)
        temporal_factory = factories("temporal", saved["temporal"] if temporal is None else temporal)
        audio_factory = factories("audio_fusion", saved["audio_fusion"] if audio_fusion is None else audio_fusion)
        with _parameters_on_meta():  # load_weights takes the checkpoint's tensors: nothing allocated twice
            return cls(resolved, temporal_factory, audio_factory)


def _parameters_on_meta():
    """Build with parameters on the meta device (the weights are loaded next, by assignment) but
    buffers real: a component's non-persistent buffers (positions, tables) are not in any file, so
    they must be computed at construction."""
    from accelerate import init_empty_weights

    return init_empty_weights(include_buffers=False)


def check_full_size_presets() -> list[str]:
    """``'field: preset vs file'`` for every ``memo_released`` preset value the vendored full-size
    configs disagree with (empty when the preset table is the files)."""
    parts = {p: full_size_config(p) for p in (*NET_PARTS, "audio_proj")}
    values = _geometry_of(parts, {p: str(FULL_SIZE_FILES.get(p, p)) for p in parts})
    return [f"{name}: preset {PRESETS[RELEASED][name]!r}, file {values[name][0]!r}"
            for name in PRESETS[RELEASED] if _normal(PRESETS[RELEASED][name]) != _normal(values[name][0])] + \
           [f"{name}: NetworkConfig default {NetworkConfig.model_fields[name].default!r}, file {values[name][0]!r}"
            for name in RELEASED_GEOMETRY if name not in PRESETS[RELEASED]
            and NetworkConfig.model_fields[name].default != values[name][0]]
