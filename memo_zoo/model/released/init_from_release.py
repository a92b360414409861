"""Another temporal component on the release, initialised from its motion modules (issue 18, item 7; A6).

``model: {network: {preset: memo_released, weights: R}, temporal: {kind: self_attention}}``: the
released network with a zoo temporal component at every motion site. Everything but the motion
modules is the release's, loaded strictly (every other key of ``diffusion_net``, ``reference_net``
and ``image_proj`` must be there with its shape). Each site's new module takes, by role, what the
release's motion module at that site has (the same pairing AnimateDiff's init uses, A6 and
``memo_zoo.model.animatediff_init``; the released motion module is AnimateDiff's layout):

- ``to_q``, ``to_k``, ``to_v``   <- ``temporal_transformer.transformer_blocks.0.attention_blocks.0.to_{q,k,v}``;
- ``to_out`` (weight, bias)      <- ``...attention_blocks.0.to_out.0``;
- ``norm`` / ``norm.inner``: a GroupNorm <- ``temporal_transformer.norm``; a LayerNorm <-
  ``...transformer_blocks.0.norms.0`` (the LayerNorm right before that attention).

A weight is copied only where the shapes match. The report (:class:`ReleaseInitReport`) lists
every parameter of the new modules, key by key: ``loaded`` (from which release key), ``no
counterpart`` (nothing of that role in the release: it keeps its initial value) or ``shape
differs`` (both shapes; it keeps its initial value), and the release's motion-module keys nothing
was taken from (``proj_in`` / ``proj_out``, the second attention block, the feed-forward, the
position tables). ``as_table()`` is the column form MLflow's ``log_table`` takes; ``table()`` the
printed form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from memo_zoo.errors import MemoZooError
from memo_zoo.model.animatediff_init import role_targets
from memo_zoo.model.released.folder import ERROR_LIST_LIMIT, part_weights_file, read_part_state

LOADED, NO_COUNTERPART, SHAPE_DIFFERS = "loaded", "no counterpart", "shape differs"
REPORT_FILE = "release_init.json"  # the MLflow table artifact's name

_BLOCK = "temporal_transformer.transformer_blocks.0."
_BY_ROLE = {**{f"to_{p}.weight": f"{_BLOCK}attention_blocks.0.to_{p}.weight" for p in "qkv"},
            "to_out.weight": f"{_BLOCK}attention_blocks.0.to_out.0.weight",
            "to_out.bias": f"{_BLOCK}attention_blocks.0.to_out.0.bias"}
_NORM_SOURCES: dict[type[nn.Module], str] = {nn.GroupNorm: "temporal_transformer.norm",
                                             nn.LayerNorm: f"{_BLOCK}norms.0"}


@dataclass(frozen=True)
class InitRow:
    """One parameter of a new temporal module: its key in the diffusion net, what happened, the
    release key it was (or would have been) taken from, and the shapes when they differ."""

    key: str
    status: str
    release_key: str = ""
    detail: str = ""


@dataclass(frozen=True)
class ReleaseInitReport:
    """What :func:`init_temporal_from_release` did (module docstring)."""

    source: str
    rows: tuple[InitRow, ...]
    unused: tuple[str, ...]

    def count(self, status: str) -> int:
        return sum(row.status == status for row in self.rows)

    def summary(self) -> str:
        return (f"temporal modules from the release's motion modules ({self.source}): {self.count(LOADED)} loaded, "
                f"{self.count(NO_COUNTERPART)} with no counterpart, {self.count(SHAPE_DIFFERS)} with another shape "
                f"(kept at init); {len(self.unused)} release keys unused")

    def as_table(self) -> dict[str, list[str]]:
        """Columns (``key``, ``status``, ``release_key``, ``detail``); unused release keys are rows
        with status ``unused``. What ``run.log_table(..., REPORT_FILE)`` takes."""
        rows = [*self.rows, *(InitRow("", "unused", key) for key in self.unused)]
        return {"key": [r.key for r in rows], "status": [r.status for r in rows],
                "release_key": [r.release_key for r in rows], "detail": [r.detail for r in rows]}

    def table(self) -> str:
        """The report as printed text, one line per key."""
        lines = [self.summary()]
        lines += [f"  {row.status:<14} {row.key}" + (f" <- {row.release_key}" if row.release_key else "")
                  + (f" ({row.detail})" if row.detail else "") for row in self.rows]
        lines += [f"  {'unused':<14} {key}" for key in self.unused]
        return "\n".join(lines)


def _targets(module: nn.Module) -> dict[str, str]:
    """Parameter of a temporal module -> the key (under its site's motion module) of that role."""
    return role_targets(module, _BY_ROLE, _NORM_SOURCES)


def _check_rest(net: nn.Module, state: Mapping[str, Tensor], motion: tuple[str, ...], source: str) -> dict[str, Tensor]:
    """The release's tensors outside the motion sites, checked against the net's (every key, every
    shape); a mismatch is a ``MemoZooError`` naming the file and the keys."""
    own = {k: v for k, v in net.state_dict().items() if not k.startswith(motion)}
    theirs = {k: v for k, v in state.items() if not k.startswith(motion)}
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    shapes = sorted(f"{k}: file {tuple(theirs[k].shape)}, module {tuple(own[k].shape)}"
                    for k in set(own) & set(theirs) if theirs[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        lines = [f"{source}: does not fit the network outside its motion modules:"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            lines += [f"  {title}: {item}" for item in items[:ERROR_LIST_LIMIT]]
            if len(items) > ERROR_LIST_LIMIT:
                lines.append(f"  ... and {len(items) - ERROR_LIST_LIMIT} more {title}")
        raise MemoZooError("\n".join(lines))
    return theirs


def init_temporal_from_release(diffusion_net: nn.Module, state: Mapping[str, Tensor],
                               source: str) -> ReleaseInitReport:
    """Load the release's ``diffusion_net`` tensors ``state`` into a
    :class:`~memo_zoo.model.released.unet3d.ReleasedDiffusionNet` built with another temporal
    component: everything outside the motion sites strictly, each site's temporal module by role
    where shapes match (module docstring). Returns the key-by-key report."""
    sites = [site.prefix + "." for site in diffusion_net.motion_sites]
    rest = _check_rest(diffusion_net, state, tuple(sites), source)
    rows: list[InitRow] = []
    plan: list[tuple[nn.Parameter, str]] = []
    used: set[str] = set()
    for prefix in sites:
        module = diffusion_net.get_submodule(prefix[:-1])
        targets = _targets(module)
        for name, param in module.named_parameters():
            key = prefix + name
            if name not in targets or prefix + targets[name] not in state:
                rows.append(InitRow(key, NO_COUNTERPART, prefix + targets[name] if name in targets else ""))
                continue
            release_key = prefix + targets[name]
            theirs = state[release_key]
            if theirs.shape != param.shape:
                rows.append(InitRow(key, SHAPE_DIFFERS, release_key,
                                    f"release {tuple(theirs.shape)}, module {tuple(param.shape)}"))
                continue
            rows.append(InitRow(key, LOADED, release_key))
            plan.append((param, release_key))
            used.add(release_key)
    with torch.no_grad():
        diffusion_net.load_state_dict(rest, strict=False)
        for param, release_key in plan:
            param.copy_(state[release_key])
    unused = tuple(k for k in state if k.startswith(tuple(sites)) and k not in used)
    return ReleaseInitReport(source=source, rows=tuple(rows), unused=unused)


def build_with_temporal(network: Any, temporal: Any, audio_fusion: Any,
                        factories: Any) -> tuple[nn.Module, ReleaseInitReport]:
    """A ``memo_released`` network (``network`` with ``weights``) whose temporal component is
    ``temporal`` (any kind), the rest the release's, the temporal modules initialised from the
    release's motion modules; returns ``(net, report)``. ``audio_fusion`` as ``ReleasedMemoNet.build``
    takes it (None = the release's ``joint_audio``); ``factories(slot, config)`` makes the factories."""
    from memo_zoo.model.released.folder import load_strict
    from memo_zoo.model.released.memo_net import (ReleasedMemoNet, released_component_configs,
                                                  resolve_released_network)

    if temporal is None:
        raise MemoZooError("model.temporal is needed: the component that replaces the release's motion modules")
    resolved = resolve_released_network(network)
    if resolved.folder is None:
        raise MemoZooError("initialising from the release needs model.network.weights (a release folder or hub id)")
    _, audio_config = released_component_configs(resolved, None, audio_fusion)
    net = ReleasedMemoNet(resolved, factories("temporal", temporal), factories("audio_fusion", audio_config))
    for part in ("image_proj", "reference_net"):
        load_strict(getattr(net, part), read_part_state(resolved.folder, part),
                    str(part_weights_file(resolved.folder, part)))
    source = str(part_weights_file(resolved.folder, "diffusion_net"))
    report = init_temporal_from_release(net.diffusion_net, read_part_state(resolved.folder, "diffusion_net"), source)
    return net.eval(), report

