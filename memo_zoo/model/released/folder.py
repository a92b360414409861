"""Reading the authors' released MEMO checkpoint folder (``memoavatar/memo``; method.md §10).

A release is a folder with one subfolder per part, each a diffusers ``ModelMixin.save_pretrained``
output: ``config.json`` + ``diffusion_pytorch_model.safetensors`` (float32 in memory, keys without a
prefix). :data:`PARTS` is the one table of the parts, their subfolders and constructor fields.

Finding it (:func:`resolve_release`): a local folder in that layout, or a hub id
(``memoavatar/memo``, ``memoavatar/memo@<revision>``) looked up OFFLINE in the local Hugging Face
cache with ``huggingface_hub.snapshot_download(local_files_only=True)``. memo-zoo never downloads;
a release that is not there is a ``MissingWeightsError`` naming the id, the cache folder and the
command that fetches it. The cache folder is computed when called, from ``HF_HUB_CACHE`` /
``HUGGINGFACE_HUB_CACHE`` / ``HF_HOME`` / ``XDG_CACHE_HOME`` with huggingface_hub's precedence,
because huggingface_hub itself reads them once, at import.

Configs (:func:`read_part_config`) are read the way diffusers' ``ConfigMixin.from_config`` reads
them: keys starting with ``_`` (``_class_name``, ``_diffusers_version``, ``_out_channels``...) are
metadata and never constructor arguments; names listed in ``_use_default_values`` take the
code default; ``_class_name`` must be a string. Unlike diffusers, which warns about and ignores a
field it does not know, an unknown field is refused by name: a misspelt width would otherwise
build a different network silently. A constructor argument that is absent takes the released
class's code default -- for the three small parts that is what the hub build gets (golden
README, quirk Q1: those classes do not register their config).

Weights (:func:`read_part_state`, :func:`load_strict`): every missing, unexpected or mis-shaped
tensor is an error naming the file, the key and both shapes; nothing is left at its initial value.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.weights import weights_path

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "diffusion_pytorch_model.safetensors"
SHARD_INDEX_FILE = "diffusion_pytorch_model.safetensors.index.json"  # save_pretrained's sharded layout
BIN_FILE = "diffusion_pytorch_model.bin"  # older save_pretrained output; read with weights_only=True
DEFAULT_HUB_ID = "memoavatar/memo"
FETCH_COMMAND = "huggingface-cli download {repo_id}"
ERROR_LIST_LIMIT = 20  # problems listed by name before "... and N more"

# The released UNet2DConditionModel's constructor (memo/models/unet_2d_condition.py) with its code
# defaults; ``_out_channels`` / ``_center_input_sample`` start with "_" and so are never
# constructor arguments (quirk Q2).
_UNET_2D_FIELDS: dict[str, Any] = {
    "sample_size": None, "in_channels": 4, "flip_sin_to_cos": True, "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "only_cross_attention": False, "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
    "downsample_padding": 1, "mid_block_scale_factor": 1, "dropout": 0.0, "act_fn": "silu",
    "norm_num_groups": 32, "norm_eps": 1e-5, "cross_attention_dim": 1280, "transformer_layers_per_block": 1,
    "reverse_transformer_layers_per_block": None, "encoder_hid_dim": None, "encoder_hid_dim_type": None,
    "attention_head_dim": 8, "num_attention_heads": None, "dual_cross_attention": False,
    "use_linear_projection": False, "class_embed_type": None, "addition_embed_type": None,
    "addition_time_embed_dim": None, "num_class_embeds": None, "upcast_attention": False,
    "resnet_time_scale_shift": "default", "time_embedding_type": "positional", "time_embedding_dim": None,
    "time_embedding_act_fn": None, "timestep_post_act": None, "time_cond_proj_dim": None, "conv_in_kernel": 3,
    "projection_class_embeddings_input_dim": None, "attention_type": "default", "class_embeddings_concat": False,
    "mid_block_only_cross_attention": None, "addition_embed_type_num_heads": 64,
}
# The released UNet3DConditionModel's constructor (memo/models/unet_3d.py) with its code defaults.
_UNET_3D_FIELDS: dict[str, Any] = {
    "sample_size": None, "in_channels": 8, "out_channels": 8, "flip_sin_to_cos": True, "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "mid_block_type": "UNetMidBlock3DCrossAttn",
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
    "only_cross_attention": False, "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
    "downsample_padding": 1, "mid_block_scale_factor": 1, "act_fn": "silu", "norm_num_groups": 32,
    "norm_eps": 1e-5, "cross_attention_dim": 1280, "attention_head_dim": 8, "dual_cross_attention": False,
    "use_linear_projection": False, "class_embed_type": None, "num_class_embeds": None, "upcast_attention": False,
    "resnet_time_scale_shift": "default", "use_inflated_groupnorm": False, "motion_module_resolutions": [1, 2, 4, 8],
    "motion_module_kwargs": None, "unet_use_cross_frame_attention": None, "unet_use_temporal_attention": None,
    "audio_attention_dim": 768, "emo_drop_rate": 0.3,
}


@dataclass(frozen=True)
class Part:
    """One part of a release: where it lives and what its ``config.json`` may hold.

    ``fields``: constructor arguments with the released class's code defaults (filled in when
    absent). ``hidden``: keys that are not constructor arguments but that the released forward
    reads from the registered config (quirk Q2: ``center_input_sample``); kept when present.
    ``ignored``: keys of the stock diffusers class that the released class does not take;
    diffusers drops them with a warning, so they are dropped here too (their value cannot change
    what the released code builds). Anything else is refused.
    """

    name: str
    subfolder: str
    class_name: str
    fields: Mapping[str, Any]
    hidden: frozenset[str] = field(default_factory=frozenset)
    ignored: frozenset[str] = field(default_factory=frozenset)
    small: bool = False  # a small part (Q1): every field is a positive integer size

    def folder(self, release: str | Path) -> Path:
        return Path(release) / self.subfolder


PARTS: dict[str, Part] = {part.name: part for part in (
    Part("reference_net", "reference_net", "UNet2DConditionModel", _UNET_2D_FIELDS,
         hidden=frozenset({"center_input_sample", "out_channels"}),
         # stock diffusers UNet2DConditionModel arguments the released class does not have
         ignored=frozenset({"resnet_skip_time_act", "resnet_out_scale_factor",
                            "conv_out_kernel", "cross_attention_norm"})),
    Part("diffusion_net", "diffusion_net", "UNet3DConditionModel", _UNET_3D_FIELDS,
         hidden=frozenset({"center_input_sample"})),
    Part("image_proj", "image_proj", "ImageProjModel",
         {"cross_attention_dim": 768, "clip_embeddings_dim": 512, "clip_extra_context_tokens": 4}, small=True),
    Part("audio_proj", "audio_proj", "AudioProjModel",
         {"seq_len": 5, "blocks": 12, "channels": 768, "intermediate_dim": 512, "output_dim": 768,
          "context_tokens": 32}, small=True),
    Part("audio_emotion_classifier", "misc/audio_emotion_classifier", "AudioEmotionClassifierModel",
         {"num_classifier_layers": 5, "num_classifier_channels": 2048}, small=True),
)}


def part_named(name: str) -> Part:
    try:
        return PARTS[name]
    except KeyError:
        raise MemoZooError(f"unknown part {name!r} of a MEMO release; the parts are: {', '.join(PARTS)}") from None


# ------------------------------------------------------------------------------------ finding it

_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?$")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, with huggingface_hub's precedence, read now."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.path.expandvars(os.environ[variable])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def _check_release_folder(folder: Path, reference: str) -> Path:
    if not folder.is_dir():
        raise MissingWeightsError(f"MEMO release {reference!r}: {folder} is not a folder")
    if not any(part.folder(folder).is_dir() for part in PARTS.values()):
        raise MemoZooError(f"MEMO release {reference!r}: {folder} holds none of the released parts "
                           f"({', '.join(part.subfolder + '/' for part in PARTS.values())})")
    return folder


def _from_hub_cache(repo_id: str, revision: str | None, reference: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=str(cache), local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as error:
        at = f" at revision {revision!r}" if revision else ""
        command = FETCH_COMMAND.format(repo_id=repo_id) + (f" --revision {revision}" if revision else "")
        raise MissingWeightsError(
            f"MEMO release {reference!r}: {repo_id}{at} is not in the local Hugging Face cache {cache} "
            f"({type(error).__name__}); memo-zoo does not download. Fetch it with `{command}` "
            "(HF_HOME / HF_HUB_CACHE choose the cache), or give the path of a local release folder") from None
    return _check_release_folder(Path(folder), reference)


def resolve_release(reference: str | Path) -> Path:
    """The local folder of a release: ``reference`` is a folder (a path, or a bare name under
    ``MEMO_ZOO_WEIGHTS_DIR``) or a hub id ``owner/name[@revision]`` already in the local HF cache."""
    text = str(reference)
    path = Path(text).expanduser()
    if path.exists():
        return _check_release_folder(path, text)
    match = _HUB_ID.match(text)
    if match and not text.startswith(".") and not Path(text).is_absolute():
        return _from_hub_cache(match["repo"], match["revision"], text)
    if "/" not in text and "@" not in text:
        return _check_release_folder(weights_path(text, f"MEMO release {text!r}"), text)
    raise MissingWeightsError(f"MEMO release {text!r}: no folder at {path}, and it is not a hub id "
                              f"(owner/name[@revision], e.g. {DEFAULT_HUB_ID})")


# ------------------------------------------------------------------------------------ configs


def read_part_config(folder: str | Path, part: str) -> dict[str, Any]:
    """``<folder>/<subfolder>/config.json`` as the released class's constructor arguments (code
    defaults filled in) plus the hidden keys it holds; see the module docstring."""
    spec = part_named(part)
    path = spec.folder(folder) / CONFIG_FILE
    if not path.is_file():
        raise MissingWeightsError(f"MEMO release part {part!r}: no {CONFIG_FILE} at {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise MemoZooError(f"{path}: cannot be read as JSON ({error})") from None
    if not isinstance(raw, dict):
        raise MemoZooError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    class_name = raw.get("_class_name", spec.class_name)
    if not isinstance(class_name, str):
        raise MemoZooError(f"{path}: _class_name must be a string, got {class_name!r}")
    if class_name != spec.class_name:
        raise MemoZooError(f"{path}: _class_name is {class_name!r}, but part {part!r} is a {spec.class_name} "
                           "(a config of another part?)")
    use_defaults = raw.get("_use_default_values", [])
    if not isinstance(use_defaults, list):
        raise MemoZooError(f"{path}: _use_default_values must be a list of field names, got {use_defaults!r}")
    given = {k: v for k, v in raw.items() if not k.startswith("_") and k not in use_defaults}
    unknown = sorted(k for k in given if k not in spec.fields and k not in spec.hidden and k not in spec.ignored)
    if unknown:
        raise MemoZooError(f"{path}: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                           f"for {spec.class_name} (part {part!r}); known: {', '.join(sorted(spec.fields))}")
    config = {name: given.get(name, default) for name, default in spec.fields.items()}
    config.update({k: given[k] for k in spec.hidden if k in given})
    if spec.small:
        bad = [f"{k}={v!r}" for k, v in config.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1]
        if bad:
            raise MemoZooError(f"{path}: {', '.join(bad)}: sizes of {spec.class_name} must be positive integers")
    return config


# ------------------------------------------------------------------------------------ weights


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise MemoZooError(f"{path}: cannot be read as safetensors ({error}); the file is damaged or "
                           "truncated") from None


def _load_shards(index: Path) -> dict[str, Tensor]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MemoZooError(f"{index}: not a safetensors shard index with a 'weight_map' ({error})") from None
    state: dict[str, Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        file = index.parent / shard
        if not file.is_file():
            raise MissingWeightsError(f"{index}: names shard {shard!r}, which is not at {file}")
        state.update(_load_safetensors(file))
    return state


def _load_bin(path: Path) -> dict[str, Tensor]:
    try:
        # weights_only: a pickle may run code; only tensors and containers are accepted.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle's failures have no common base: name the file whatever they are
        raise MemoZooError(f"{path}: cannot be loaded as a tensor state dict with weights_only=True "
                           f"({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise MemoZooError(f"{path}: not a flat state dict of tensors")
    return state


def part_weights_file(folder: str | Path, part: str) -> Path:
    """The weights file of a part: safetensors first (as ``use_safetensors=True``), then a
    safetensors shard index, then a ``.bin``."""
    base = part_named(part).folder(folder)
    for name in (SAFETENSORS_FILE, SHARD_INDEX_FILE, BIN_FILE):
        if (base / name).is_file():
            return base / name
    raise MissingWeightsError(f"MEMO release part {part!r}: no weights at {base / SAFETENSORS_FILE} "
                              f"(nor {SHARD_INDEX_FILE} / {BIN_FILE} there)")


def read_part_state(folder: str | Path, part: str) -> dict[str, Tensor]:
    """The part's tensors, keys as saved (no prefix), dtype as stored."""
    path = part_weights_file(folder, part)
    if path.name == SAFETENSORS_FILE:
        return _load_safetensors(path)
    if path.name == SHARD_INDEX_FILE:
        return _load_shards(path)
    return _load_bin(path)


Rename = Mapping[str, str] | Callable[[str], str]


def renamer(rename: Rename | None) -> Callable[[str], str]:
    """A key translation: ``None`` (identity), a function, or a prefix table ``{file prefix:
    module prefix}`` (longest matching prefix wins; keys matching none are kept)."""
    if rename is None:
        return lambda key: key
    if callable(rename):
        return rename
    prefixes = sorted(rename.items(), key=lambda item: -len(item[0]))

    def translate(key: str) -> str:
        for source, target in prefixes:
            if key.startswith(source):
                return target + key[len(source):]
        return key

    return translate


def _shape(value: Tensor | Any) -> tuple[int, ...]:
    return tuple(value.shape)


def _listing(title: str, lines: list[str]) -> list[str]:
    shown = [f"  {title}: {line}" for line in lines[:ERROR_LIST_LIMIT]]
    if len(lines) > ERROR_LIST_LIMIT:
        shown.append(f"  ... and {len(lines) - ERROR_LIST_LIMIT} more {title}")
    return shown


def state_mismatch(module: nn.Module, state: Mapping[str, Any], source: str,
                   rename: Rename | None = None) -> tuple[dict[str, Any], list[str]]:
    """``(state under the module's key names, problem lines)``; ``state`` values need only a
    ``shape`` (tensors, or meta / manifest stand-ins)."""
    translate = renamer(rename)
    expected = module.state_dict()  # parameters and persistent buffers: exactly what a file must hold
    converted: dict[str, Any] = {}
    origin: dict[str, str] = {}
    problems: list[str] = []
    for key, value in state.items():
        target = translate(key)
        if target in converted:
            problems.append(f"keys {origin[target]!r} and {key!r} both become {target!r}")
            continue
        converted[target], origin[target] = value, key

    def named(target: str) -> str:
        key = origin.get(target, target)
        return repr(key) if key == target else f"{key!r} (module key {target!r})"

    missing = [f"{target!r} {_shape(expected[target])}" for target in expected if target not in converted]
    unexpected = [f"{named(t)} {_shape(v)}" for t, v in converted.items() if t not in expected]
    shapes = [f"{named(t)}: file {_shape(v)}, module {_shape(expected[t])}" for t, v in converted.items()
              if t in expected and _shape(v) != _shape(expected[t])]
    lines = (_listing("duplicate", problems) + _listing("missing", missing) + _listing("unexpected", unexpected)
             + _listing("wrong shape", shapes))
    if lines:
        counts = ", ".join(f"{n} {what}" for n, what in ((len(problems), "duplicate"), (len(missing), "missing"),
                                                         (len(unexpected), "unexpected"),
                                                         (len(shapes), "with a wrong shape")) if n)
        lines.insert(0, f"{source}: does not fit {type(module).__name__} ({counts}):")
    return converted, lines


def load_strict(module: nn.Module, state: Mapping[str, Tensor], source: str,
                rename: Rename | None = None) -> nn.Module:
    """Load ``state`` (keys as in ``source``, translated by ``rename``) into ``module``: every
    parameter and persistent buffer must be given with its shape and nothing else, or a
    ``MemoZooError`` lists each problem (file, key, both shapes). Returns ``module``."""
    converted, lines = state_mismatch(module, state, source, rename)
    if lines:
        raise MemoZooError("\n".join(lines))
    own = module.state_dict()
    on_meta = any(t.is_meta for t in own.values())
    if on_meta:
        # A module built on the meta device has no storage to copy into: it takes the tensors
        # themselves, cast to its own dtypes (a copy into storage would cast them the same way).
        converted = {k: v.to(own[k].dtype) for k, v in converted.items()}
    module.load_state_dict(converted, strict=True, assign=on_meta)
    return module
