"""Initialising the Diffusion Net's temporal modules from AnimateDiff motion modules (spec A6).

Reads a LOCAL motion-module checkpoint in either layout (nothing is downloaded):

- the original release (``mm_sd_v15_v2.ckpt`` and alike; .ckpt/.pth/.pt/.bin through
  ``torch.load(weights_only=True)``, or .safetensors): ``<block>.motion_modules.<j>.temporal_transformer.
  {norm, proj_in, proj_out, transformer_blocks.<t>.{attention_blocks.<a>, norms.<a>, ff, ff_norm}}``;
- a diffusers ``MotionAdapter`` folder (``diffusion_pytorch_model.safetensors`` + ``config.json``):
  ``<block>.motion_modules.<j>.{norm, proj_in, proj_out, transformer_blocks.<t>.{attn1, attn2, norm1,
  norm2, norm3, ff}}``.

The original names are translated to diffusers' first. The motion module ``<block>.motion_modules.<j>``
sits where the Diffusion Net has the site ``<block>.attentions.<j>`` (both follow the j-th ResNet of
the block), so that is the pairing. A temporal component built like AnimateDiff's attention (norm ->
bias-free q/k/v -> attention -> output Linear) takes, per site, what has the same role and shape:

- ``to_q``, ``to_k``, ``to_v``         <- ``transformer_blocks.0.attn1.to_{q,k,v}``;
- ``to_out`` (weight, bias)            <- ``transformer_blocks.0.attn1.to_out.0`` (``output="copy"``);
- ``norm`` (or ``norm.inner``): a GroupNorm <- the motion module's GroupNorm ``norm``, a LayerNorm
  <- ``transformer_blocks.0.norm1`` (the LayerNorm right before attn1).

Everything else of AnimateDiff has no counterpart and is reported unused: ``proj_in``/``proj_out``,
the second attention block, the feed-forward and its norm, further transformer blocks, the
position table (``self_attention`` computes the same sinusoidal table from its config), and motion
modules at blocks without a transformer (SD1.5's down_blocks.3 and up_blocks.0).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from memo_zoo.errors import MemoZooError
from memo_zoo.model.reference_net import describe_mismatch
from memo_zoo.weights import resolve_weights

if TYPE_CHECKING:
    from memo_zoo.model.memo_net import MemoNet

ADAPTER_WEIGHTS = "diffusion_pytorch_model.safetensors"
PICKLE_SUFFIXES = (".ckpt", ".pth", ".pt", ".bin")
WHAT = ("AnimateDiff motion module (original .ckpt/.pth/.safetensors state dict, or a diffusers MotionAdapter "
        f"folder with {ADAPTER_WEIGHTS} + config.json)")

# AnimateDiff's released motion modules use 8 heads and GroupNorm(32); the original layout
# does not record them, a MotionAdapter's config.json does.
ANIMATEDIFF_HEADS = 8
ANIMATEDIFF_GROUPS = 32

OutputInit = Literal["copy", "zero"]

_MOTION_KEY = re.compile(r"^(?:module\.)?((?:down_blocks\.\d+|up_blocks\.\d+|mid_block)\.motion_modules\.\d+)\.(.+)$")
# Original layout -> diffusers names, applied in order to the part after "motion_modules.<j>.".
_RENAMES: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"^temporal_transformer\."), ""),
    (re.compile(r"\.attention_blocks\.(\d+)\."), lambda m: f".attn{int(m[1]) + 1}."),
    (re.compile(r"\.norms\.(\d+)\."), lambda m: f".norm{int(m[1]) + 1}."),
    # diffusers numbers the feed-forward's norm after the two attention norms.
    (re.compile(r"\.ff_norm\."), ".norm3."),
)

_ATTENTION = {f"to_{p}.weight": f"transformer_blocks.0.attn1.to_{p}.weight" for p in "qkv"}
_OUTPUT = {"to_out.weight": "transformer_blocks.0.attn1.to_out.0.weight",
           "to_out.bias": "transformer_blocks.0.attn1.to_out.0.bias"}
_NORM_SOURCES: dict[type[nn.Module], str] = {nn.GroupNorm: "norm", nn.LayerNorm: "transformer_blocks.0.norm1"}


@dataclass(frozen=True)
class AnimateDiffReport:
    """What ``init_from_animatediff`` did.

    loaded: MemoNet state-dict name -> the checkpoint key it was copied from.
    unused: checkpoint keys nothing was copied from, in file order.
    kept:   temporal-module parameters left at their initial values.
    notes:  differences that do not stop the load (head count, norm groups, no mid-block module).
    """

    source: Path
    loaded: dict[str, str]
    unused: tuple[str, ...]
    kept: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the trainer logs it to MLflow as ``animatediff_init.json``)."""
        return {"source": str(self.source), "loaded": dict(self.loaded), "unused": list(self.unused),
                "kept": list(self.kept), "notes": list(self.notes)}

    def summary(self) -> str:
        lines = [f"AnimateDiff init from {self.source}: {len(self.loaded)} tensors loaded, "
                 f"{len(self.unused)} checkpoint keys unused, {len(self.kept)} temporal parameters kept at init"]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


def read_motion_modules(path: str | Path) -> tuple[Path, dict[str, Tensor], dict[str, Any] | None]:
    """``(weights file, tensors, MotionAdapter config or None)`` of a local checkpoint or folder."""
    found = resolve_weights(path, WHAT)
    config = None
    if found.is_dir():
        found = resolve_weights(found, WHAT, expect=(ADAPTER_WEIGHTS,))
        if (found / "config.json").is_file():
            config = json.loads((found / "config.json").read_text())
        found = found / ADAPTER_WEIGHTS
    suffix = found.suffix.lower()
    if suffix not in (".safetensors", *PICKLE_SUFFIXES):
        raise MemoZooError(f"{found}: unknown {WHAT} format {suffix!r}; expected .safetensors, "
                           f"{', '.join(PICKLE_SUFFIXES)} or a MotionAdapter folder")
    try:
        if suffix == ".safetensors":
            state: Any = load_file(str(found))
        else:
            # weights_only: a checkpoint from the internet must not run code when read.
            state = torch.load(found, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any read failure is a bad file the user can replace
        raise MemoZooError(f"{found} could not be read as {WHAT}: {error}") from None
    # Checkpoints saved by AnimateDiff's training script wrap the tensors with the step count.
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise MemoZooError(f"{found} does not hold a state dict ({type(state).__name__})")
    return found, {str(k): v for k, v in state.items() if isinstance(v, Tensor)}, config


def _canonical(suffix: str) -> str:
    for pattern, replacement in _RENAMES:
        suffix = pattern.sub(replacement, suffix)
    return suffix


def _targets(module: nn.Module, output: OutputInit) -> dict[str, str]:
    """Parameter of ``module`` -> the adapter key (diffusers names, under one motion module) it takes."""
    wanted = dict(_ATTENTION)
    if output == "copy":
        wanted.update(_OUTPUT)
    return role_targets(module, wanted, _NORM_SOURCES)


def role_targets(module: nn.Module, wanted: Mapping[str, str],
                 norm_sources: Mapping[type[nn.Module], str]) -> dict[str, str]:
    """Parameter of a temporal module -> the source key of the same role: ``wanted`` names the
    attention parameters; the module's input norm (``norm`` or ``norm.inner``) maps to the source
    norm of its type (``norm_sources``: GroupNorm and LayerNorm come from different places).
    Shared by the AnimateDiff and the released-MEMO initialisations."""
    params = dict(module.named_parameters())
    targets = {name: key for name, key in wanted.items() if name in params}
    for name in ("norm", "norm.inner"):
        try:
            norm = module.get_submodule(name)
        except AttributeError:
            continue
        source = norm_sources.get(type(norm))
        if source is not None:
            targets.update({f"{name}.{p}": f"{source}.{p}" for p in ("weight", "bias") if f"{name}.{p}" in params})
    return targets


def _adapter_value(config: dict[str, Any] | None, key: str, default: int, motion_prefix: str) -> int:
    """A MotionAdapter config value for the block of ``motion_prefix`` (it may be one per level)."""
    value = default if config is None else config.get(key, default)
    if not isinstance(value, (list, tuple)):
        return int(value)
    block, index = motion_prefix.split(".")[:2]
    if block == "mid_block":
        return int(value[-1])
    return int(value[int(index)] if block == "down_blocks" else list(reversed(value))[int(index)])


def init_from_animatediff(net: "MemoNet", path: str | Path, output: OutputInit = "copy") -> AnimateDiffReport:
    """Copy an AnimateDiff motion-module checkpoint into ``net``'s temporal modules (spec A6).

    ``output="copy"`` also takes attn1's output projection: AnimateDiff's modules are trained
    residual modules, so theirs is what they learnt, and the net then no longer starts as the plain
    UNet; ``"zero"`` keeps MEMO's zero-initialised ``to_out`` (identity at init, A6) and loads only
    the norm and q/k/v. Everything is checked before anything is copied: a block the checkpoint
    lacks, a missing key or a shape mismatch raises ``MemoZooError`` naming the file and the key.
    """
    source, state, config = read_motion_modules(path)
    motion: dict[str, dict[str, str]] = {}  # motion-module prefix -> diffusers suffix -> file key
    for key in state:
        match = _MOTION_KEY.match(key)
        if match:
            motion.setdefault(match[1], {})[_canonical(match[2])] = key
    if not motion:
        sample = ", ".join(list(state)[:3]) or "no tensors"
        raise MemoZooError(f"{source} holds no AnimateDiff motion-module keys "
                           f"(<block>.motion_modules.<j>.*); it starts with: {sample}")

    diffusion = net.diffusion_net
    plan: list[tuple[nn.Parameter, str, str]] = []
    kept: list[str] = []
    notes: dict[str, list[str]] = {}  # note -> the sites it applies to
    absent_sites: list[str] = []
    missing: list[str] = []
    shapes: list[str] = []
    mapped_any = False
    for site, block in zip(diffusion.sites, diffusion.blocks):
        module = block.temporal
        prefix = f"diffusion_net.unet.{site.name}.temporal."
        params = dict(module.named_parameters())
        targets = _targets(module, output)
        mapped_any = mapped_any or bool(targets)
        motion_prefix = site.name.replace(".attentions.", ".motion_modules.")
        keys = motion.get(motion_prefix)
        if keys is None:
            if site.name.startswith("mid_block."):
                # AnimateDiff v1 has no mid-block motion module; that site keeps its init.
                kept += [prefix + name for name in params]
                notes.setdefault("no mid-block motion module in the checkpoint (as AnimateDiff v1): kept at init",
                                 []).append(site.name)
            elif targets:
                absent_sites.append(site.name)
            continue
        for name, suffix in targets.items():
            key = keys.get(suffix)
            if key is None:
                missing.append(f"{motion_prefix}.{suffix} (for {prefix}{name})")
            elif state[key].shape != params[name].shape:
                shapes.append(f"{key}: {tuple(state[key].shape)} in the checkpoint, "
                              f"{tuple(params[name].shape)} at {prefix}{name}")
            else:
                plan.append((params[name], prefix + name, key))
        kept += [prefix + name for name in params if name not in targets]
        # Head count and GroupNorm groups shape no weight, so they cannot be checked by shape; they
        # change what the copied weights compute, so the report says where they differ.
        heads = getattr(module, "heads", None)
        theirs = _adapter_value(config, "motion_num_attention_heads", ANIMATEDIFF_HEADS, motion_prefix)
        if isinstance(heads, int) and heads != theirs:
            notes.setdefault(f"q/k/v split into {heads} heads here, {theirs} in AnimateDiff", []).append(site.name)
        if "norm.weight" in targets.values():
            norm = next(m for m in module.modules() if isinstance(m, nn.GroupNorm))
            theirs = _adapter_value(config, "motion_norm_num_groups", ANIMATEDIFF_GROUPS, motion_prefix)
            if norm.num_groups != theirs:
                notes.setdefault(f"GroupNorm of {norm.num_groups} groups here, {theirs} in AnimateDiff",
                                 []).append(site.name)

    kind = getattr(diffusion.temporal_config, "kind", type(diffusion.temporal_config).__name__)
    if not mapped_any:
        raise MemoZooError(f"the temporal component {kind!r} has no parameter AnimateDiff's motion modules map onto "
                           "(to_q/to_k/to_v/to_out, norm); nothing to load from " + str(source))
    if absent_sites:
        found = ", ".join(sorted(motion))
        raise MemoZooError(f"{source} does not match the network's blocks (preset {net.network_config.preset!r}, "
                           f"block_out_channels {tuple(net.network_config.block_out_channels)}): no motion module "
                           f"for the site(s) {', '.join(absent_sites)}; it has {found}")
    if missing or shapes:
        raise MemoZooError(f"{source} does not fit the temporal modules ({kind!r}) of this network:\n"
                           + describe_mismatch(missing, [], shapes))

    with torch.no_grad():
        for param, _, key in plan:
            param.copy_(state[key])
    used = {key for _, _, key in plan}
    return AnimateDiffReport(source=source, loaded={name: key for _, name, key in plan},
                             unused=tuple(k for k in state if k not in used), kept=tuple(kept),
                             notes=tuple(f"{note}: {', '.join(sites)}" for note, sites in notes.items()))
