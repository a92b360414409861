"""Writing a model back in the authors' released layout (issue 18, item 4; method.md §10).

The inverse of :mod:`memo_zoo.model.released.folder`: one subfolder per part of :data:`~.folder.PARTS`
(``reference_net/``, ``diffusion_net/``, ``image_proj/``, ``audio_proj/`` and, when the emotion
detector holds the released head, ``misc/audio_emotion_classifier/``), each what diffusers'
``ModelMixin.save_pretrained`` writes for the released class:

- ``config.json``: ``json.dumps(config, indent=2, sort_keys=True) + "\\n"`` with ``_class_name`` and
  ``_diffusers_version`` (the release pins diffusers 0.31.0: :data:`RELEASED_DIFFUSERS_VERSION`).
  The two UNets write every constructor argument (the released classes register them all), the
  reference net also its private ``_out_channels`` / ``_center_input_sample`` (registered with their
  code defaults whatever the file said) and both the hidden ``center_input_sample`` the released
  forwards read (golden README Q2). The three small parts do not register their config (Q1), so a
  real ``save_pretrained`` would write only the metadata and the released loader would silently
  build the full-size defaults: their constructor arguments are written out here, which is what
  makes ``from_pretrained`` build the right sizes. A value equal to the released code default is
  written as that default (``mid_block_scale_factor: 1``, not ``1.0``), so a release read and
  written back gives the same file.
- ``diffusion_pytorch_model.safetensors``: the state dict, keys without prefix, every floating
  tensor in ``dtype`` (float32 unless asked: ``from_pretrained`` without ``torch_dtype`` builds
  float32 whatever is stored), metadata ``{"format": "pt"}`` as diffusers sets it; above diffusers'
  default ``max_shard_size`` (10 GB) in shards with ``diffusion_pytorch_model.safetensors.index.json``
  the way diffusers names them (the full-size parts are all below it).

What the released code cannot run is refused by name before anything is written: a temporal kind
other than ``motion_module``, an audio kind other than ``joint_audio``, or one of them with an
option the release hard-codes set otherwise (the memory decay 0.9, Q3; the doubled audio residual,
Q7; 9 emotion classes, Q8; ...), or a motion option that disagrees with ``motion_module_kwargs``.

Components outside the core (the audio encoder's projector, the emotion detector's classifier)
give their part through :class:`ReleasedPartSource`: ``released_part()`` returns the part's name,
its constructor arguments and its tensors under the released key names (the projector's rename
back to ``proj1``/``proj2``/``proj3`` is the plugin's, ``released_projector.ZOO_TO_RELEASED``).

Writing is atomic (:func:`write_release`): everything goes to a temporary folder beside the
target, which is renamed into place at the end; an existing non-empty target is refused unless
``force``, and then replaced only once the new folder is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from memo_zoo.atomic import current_umask
from memo_zoo.errors import MemoZooError
from memo_zoo.model.released.folder import (CONFIG_FILE, PARTS, SAFETENSORS_FILE, SHARD_INDEX_FILE, part_named,
                                            read_part_config)
from memo_zoo.model.released.unet_config import (ReleasedReferenceNetConfig, ReleasedUNet3DConfig,
                                                motion_module_options)

RELEASED_DIFFUSERS_VERSION = "0.31.0"  # memoavatar/memo's pyproject pins diffusers==0.31.0
DEFAULT_MAX_SHARD_BYTES = 10 * 10**9  # diffusers' save_pretrained default max_shard_size "10GB"
SHARD_PATTERN = "diffusion_pytorch_model{suffix}.safetensors"  # save_pretrained's shard names
EXPORT_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                                         "float16": torch.float16}
# The parts the released inference.py loads unconditionally; the emotion classifier is optional
# here (a detector without the released head has none to give).
REQUIRED_PARTS = ("reference_net", "diffusion_net", "image_proj", "audio_proj")

# The components the released diffusion net is built from, by slot.
RELEASED_KINDS = {"temporal": "motion_module", "audio_fusion": "joint_audio"}
# The reference net's private constructor arguments: register_to_config registers them with their
# code defaults (it drops "_" keyword arguments before filling defaults), so the release writes these.
_REFERENCE_PRIVATE = {"_center_input_sample": False, "_out_channels": 4}
# Options the released code hard-codes, with the released value and where the golden README says so.
_MOTION_FIXED = {"decay": (0.9, "the memory decay of MemoryLinearAttnProcessor (Q3)"),
                 "norm_groups": (32, "the motion module's GroupNorm groups (Q9)"),
                 "ff_mult": (4, "the GEGLU width multiple of the motion transformer")}
_AUDIO_FIXED = {"double_audio_residual": (True, "the audio stream counts its input twice (Q7)"),
                "num_emotion_classes": (9, "the emotion classes of the audio modules' tables (Q8)"),
                "group_norm_eps": (1e-6, "the audio module's input GroupNorm epsilon"),
                "layer_norm_eps": (1e-5, "the audio module's LayerNorm epsilon"),
                "ff_mult": (4, "the GEGLU width multiple of the audio module")}


@dataclass(frozen=True)
class ReleasedPart:
    """One part in the release's terms: ``name`` a key of :data:`~.folder.PARTS`, ``config`` the
    released class's constructor arguments (``config.json`` without its metadata; keys starting
    with ``_`` are written as given), ``state`` its tensors under the released key names."""

    name: str
    config: Mapping[str, Any]
    state: Mapping[str, Tensor]


@runtime_checkable
class ReleasedPartSource(Protocol):
    """A component that can give its weights as a part of the release (the audio encoder's
    projector -> ``audio_proj``, the emotion detector's head -> ``audio_emotion_classifier``)."""

    def released_part(self) -> ReleasedPart | None:
        """The part, or None when this component holds nothing of the release's shape."""
        ...


@dataclass(frozen=True)
class ExportResult:
    """What :func:`write_release` wrote: the folder, the dtype, per part its file(s) and tensor count."""

    folder: Path
    dtype: torch.dtype
    files: dict[str, list[str]] = field(default_factory=dict)
    tensors: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"wrote the released layout to {self.folder} ({str(self.dtype).replace('torch.', '')}):"]
        for name, files in self.files.items():
            lines.append(f"  {part_named(name).subfolder}/: {CONFIG_FILE} + {', '.join(files)} "
                         f"({self.tensors[name]} tensors, {self.bytes[name] / 1e6:.1f} MB)")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ configs


def _as_released(part: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with each one equal to the released code default written as that default."""
    defaults = part_named(part).fields
    out: dict[str, Any] = {}
    for name, value in values.items():
        default = defaults.get(name, value)
        same_kind = isinstance(default, bool) == isinstance(value, bool)
        out[name] = default if same_kind and type(default) is not type(value) and default == value else value
    return out


def reference_net_config_json(config: ReleasedReferenceNetConfig) -> dict[str, Any]:
    """``reference_net/config.json`` (without ``_class_name`` / ``_diffusers_version``)."""
    return {**_REFERENCE_PRIVATE, **_as_released("reference_net", config.model_dump())}


def diffusion_net_config_json(config: ReleasedUNet3DConfig) -> dict[str, Any]:
    """``diffusion_net/config.json`` (without ``_class_name`` / ``_diffusers_version``);
    ``motion_module_kwargs`` as the config holds it (the release registers what it was given)."""
    return _as_released("diffusion_net", config.model_dump())


def config_text(part: str, config: Mapping[str, Any]) -> str:
    """The ``config.json`` text of ``part`` as diffusers' ``ConfigMixin.to_json_string`` writes it."""
    spec = part_named(part)
    data = {**config, "_class_name": spec.class_name, "_diffusers_version": RELEASED_DIFFUSERS_VERSION}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


# ------------------------------------------------------------------------------------ parts


def _kind(config: Any, slot: str) -> str:
    kind = getattr(config, "kind", None)
    if not isinstance(kind, str):
        raise MemoZooError(f"cannot tell which {slot} component built this diffusion net (its config "
                           f"{type(config).__name__} has no kind); export needs {slot} kind "
                           f"{RELEASED_KINDS[slot]!r}")
    return kind


def check_released_components(net: nn.Module) -> None:
    """Refuse a diffusion net the released code cannot run: its temporal / audio kinds, the
    options the release hard-codes, and motion options that disagree with ``motion_module_kwargs``."""
    problems: list[str] = []
    temporal, audio = net.temporal_config, net.audio_fusion_config
    for slot, config in (("temporal", temporal), ("audio_fusion", audio)):
        kind = _kind(config, slot)
        if kind != RELEASED_KINDS[slot]:
            what = "motion module (MemoryLinearAttnTemporalModule)" if slot == "temporal" else \
                "audio module (JointAudioTemporalBasicTransformerBlock)"
            problems.append(f"model.{slot} is {kind!r}: the released code only has its {what}; export needs "
                            f"model.{slot}.kind {RELEASED_KINDS[slot]!r}")
    if not problems:
        for slot, config, fixed in (("temporal", temporal, _MOTION_FIXED), ("audio_fusion", audio, _AUDIO_FIXED)):
            for name, (value, what) in fixed.items():
                ours = getattr(config, name, value)
                if ours != value:
                    problems.append(f"model.{slot}.{name} is {ours!r}: the released code hard-codes {what} as "
                                    f"{value!r}; export needs {name}: {value!r}")
        for option, (theirs, what) in motion_module_options(net.config.motion_kwargs).items():
            ours = getattr(temporal, option, None)
            if ours is not None and ours != theirs:
                problems.append(f"model.temporal.{option} is {ours!r} but diffusion_net config.json {what} gives "
                                f"{theirs!r}")
        null_row = net.config.emo_drop_rate > 0
        if getattr(audio, "null_emotion_row", null_row) != null_row:
            problems.append(f"model.audio_fusion.null_emotion_row is {audio.null_emotion_row!r} but the released "
                            f"code adds the null-emotion row exactly when emo_drop_rate > 0 "
                            f"(emo_drop_rate={net.config.emo_drop_rate!r})")
    if problems:
        raise MemoZooError("cannot export to the released layout:\n" + "\n".join(f"  {p}" for p in problems))


def reference_net_part(net: nn.Module) -> ReleasedPart:
    """``reference_net`` (the Reference Net, A2) from a
    :class:`~memo_zoo.model.released.reference_unet.ReleasedReferenceNet`."""
    return ReleasedPart("reference_net", reference_net_config_json(net.config), net.state_dict())


def diffusion_net_part(net: nn.Module) -> ReleasedPart:
    """``diffusion_net`` (the Diffusion Net, A3, with its motion modules T1-T6 and audio modules
    E1-E3) from a :class:`~memo_zoo.model.released.unet3d.ReleasedDiffusionNet` built with the
    released components (:func:`check_released_components`)."""
    check_released_components(net)
    return ReleasedPart("diffusion_net", diffusion_net_config_json(net.config), net.state_dict())


def image_proj_part(projector: nn.Module) -> ReleasedPart:
    """``image_proj`` (A4) from the zoo's ``ImageProjector`` (the released ``ImageProjModel`` under
    the same key names, ``small_parts.py``)."""
    config = {"cross_attention_dim": int(projector.width), "clip_embeddings_dim": int(projector.proj.in_features),
              "clip_extra_context_tokens": int(projector.tokens)}
    return ReleasedPart("image_proj", config, projector.state_dict())


def component_part(component: Any, slot: str, expected: str) -> ReleasedPart | None:
    """The part ``component`` gives (:class:`ReleasedPartSource`), checked to be ``expected``; None
    when it gives none."""
    if component is None or not isinstance(component, ReleasedPartSource):
        return None
    part = component.released_part()
    if part is not None and part.name != expected:
        raise MemoZooError(f"the {slot} component {type(component).__name__} gives the part {part.name!r}; "
                           f"export takes {expected!r} from the {slot}")
    return part


def released_parts(reference_net: nn.Module, diffusion_net: nn.Module, image_projector: nn.Module,
                   audio_encoder: Any = None, emotion_detector: Any = None) -> list[ReleasedPart]:
    """Every part of a model in the released terms: the two UNets and the image projector, the
    audio encoder's ``audio_proj`` (required: the released pipeline cannot run without it) and the
    emotion detector's classifier when it has the released head."""
    audio = component_part(audio_encoder, "audio_encoder", "audio_proj")
    if audio is None:
        name = "none" if audio_encoder is None else type(audio_encoder).__name__
        raise MemoZooError(
            f"cannot export to the released layout: the audio encoder ({name}) gives no audio_proj part; the "
            "released code only has wav2vec2 features through AudioProjModel; export needs model.audio_encoder "
            "kind 'wav2vec2' with the released projector shape (its released_part())")
    parts = [reference_net_part(reference_net), diffusion_net_part(diffusion_net), image_proj_part(image_projector),
             audio]
    emotion = component_part(emotion_detector, "emotion_detector", "audio_emotion_classifier")
    if emotion is not None:
        parts.append(emotion)
    return parts


# ------------------------------------------------------------------------------------ writing


def _file_tensors(part: ReleasedPart, dtype: torch.dtype) -> dict[str, Tensor]:
    """The part's tensors as they go to disk: on the CPU, contiguous, floating ones in ``dtype``,
    none sharing storage (safetensors refuses shared tensors; a copy is made only then)."""
    out: dict[str, Tensor] = {}
    storages: set[int] = set()
    for key, value in part.state.items():
        if not isinstance(value, Tensor):
            raise MemoZooError(f"part {part.name!r}: {key!r} is a {type(value).__name__}, not a tensor")
        if value.is_meta:
            raise MemoZooError(f"part {part.name!r}: {key!r} was never loaded (it is on the meta device)")
        tensor = value.detach()
        if tensor.is_floating_point() and tensor.dtype != dtype:
            tensor = tensor.to(dtype)
        tensor = tensor.to("cpu").contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in storages:
            tensor = tensor.clone()
        storages.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


def _write_weights(folder: Path, tensors: dict[str, Tensor], max_shard_bytes: int) -> list[str]:
    from safetensors.torch import save_file

    metadata = {"format": "pt"}  # what ModelMixin.save_pretrained passes to safetensors
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    if total <= max_shard_bytes:
        save_file(tensors, str(folder / SAFETENSORS_FILE), metadata=metadata)
        return [SAFETENSORS_FILE]
    from huggingface_hub import split_torch_state_dict_into_shards

    split = split_torch_state_dict_into_shards(tensors, filename_pattern=SHARD_PATTERN, max_shard_size=max_shard_bytes)
    for filename, keys in split.filename_to_tensors.items():
        save_file({key: tensors[key] for key in keys}, str(folder / filename), metadata=metadata)
    index = {"metadata": dict(split.metadata), "weight_map": split.tensor_to_filename}
    (folder / SHARD_INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [*split.filename_to_tensors, SHARD_INDEX_FILE]


def check_target(out: str | Path, force: bool = False) -> Path:
    """``out`` as a target folder: refused when it is a file, or a non-empty folder without ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MemoZooError(f"export target {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise MemoZooError(f"export target {out} exists and is not empty; choose another folder or pass --force "
                           "to replace it")
    return out


def _install(temp: Path, out: Path) -> None:
    """Rename the finished ``temp`` to ``out``; an existing ``out`` is moved aside first and removed
    only after the rename, so a failure leaves the old folder in place."""
    if not out.exists():
        os.replace(temp, out)
        return
    if not any(out.iterdir()):
        out.rmdir()
        os.replace(temp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    os.replace(out, old)
    try:
        os.replace(temp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_release(out: str | Path, parts: Iterable[ReleasedPart], *, dtype: torch.dtype = torch.float32,
                  force: bool = False, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> ExportResult:
    """Write ``parts`` to ``out`` in the released layout (module docstring), atomically.

    Every part is validated first (a known part, given once, the four the released inference loads
    present, a config the zoo's reader accepts), so a refused export writes nothing.
    """
    if dtype not in EXPORT_DTYPES.values():
        raise MemoZooError(f"export dtype {dtype}: expected one of {', '.join(EXPORT_DTYPES)}")
    parts = list(parts)
    names = [part.name for part in parts]
    for name in names:
        part_named(name)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise MemoZooError(f"export got the part(s) {', '.join(repeated)} more than once")
    missing = [name for name in REQUIRED_PARTS if name not in names]
    if missing:
        raise MemoZooError(f"cannot export to the released layout without {', '.join(missing)}: the released "
                           "inference loads every one of " + ", ".join(REQUIRED_PARTS))
    out = check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    result = ExportResult(folder=out, dtype=dtype)
    try:
        os.chmod(temp, 0o777 & ~current_umask())  # as a plain mkdir would leave it, not mkdtemp's 0700
        for part in sorted(parts, key=lambda p: list(PARTS).index(p.name)):
            folder = part_named(part.name).folder(temp)
            folder.mkdir(parents=True)
            (folder / CONFIG_FILE).write_text(config_text(part.name, part.config), encoding="utf-8")
            read_part_config(temp, part.name)  # the zoo's reader (and so the released loader) accepts it
            tensors = _file_tensors(part, dtype)
            result.files[part.name] = _write_weights(folder, tensors, max_shard_bytes)
            result.tensors[part.name] = len(tensors)
            result.bytes[part.name] = sum(t.numel() * t.element_size() for t in tensors.values())
            del tensors
        _install(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return result


def export_release(out: str | Path, reference_net: nn.Module, diffusion_net: nn.Module, image_projector: nn.Module,
                   audio_encoder: Any = None, emotion_detector: Any = None, *, dtype: torch.dtype = torch.float32,
                   force: bool = False, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> ExportResult:
    """A model's released nets and components written to ``out`` in the released layout
    (:func:`released_parts` then :func:`write_release`)."""
    check_target(out, force)  # before gathering: a refused target costs nothing
    parts = released_parts(reference_net, diffusion_net, image_projector, audio_encoder, emotion_detector)
    return write_release(out, parts, dtype=dtype, force=force, max_shard_bytes=max_shard_bytes)
