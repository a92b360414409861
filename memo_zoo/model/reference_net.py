"""The Reference Net (spec A2) and what it shares with the Diffusion Net: the spatial SD1.5 UNet.

``SpatialUNet`` is a diffusers ``UNet2DConditionModel`` built from a ``NetworkConfig`` whose every
``Transformer2DModel`` (down, mid and up; a "site") is replaced in ``block.attentions[i]`` by a
wrapper module with the same call signature; each net's wrapper decides what happens after the
spatial transformer. Parameters of a wrapped transformer are named ``<site>.spatial.<...>``;
``spatial_state_dict`` / ``load_spatial_state_dict`` translate to and from a plain UNet's names,
which is how SD1.5 weights are loaded (A6) and how tests compare against a plain UNet.

``ReferenceNet`` (A2) runs on clean latents at timestep 0 with the image-condition tokens as
cross-attention context (A4). One call returns, for every site,

- the attn1 inputs of its transformer blocks (reference attention, A3): layer name -> (N, L, C);
- the transformer's output feature map (N, C, H, W), in site order (down, mid, up), which the
  Diffusion Net's temporal modules use as motion-frame features (T2).

It does not denoise. What it skips: ``conv_norm_out``, ``conv_act`` and ``conv_out`` (the
prediction head, which no one reads; SD1.5's ``conv_norm_out``/``conv_out`` weights are not
loaded into it). Nothing else can go: the last up level ends with a transformer whose output is
the motion feature of the Diffusion Net's last temporal module.
"""

from __future__ import annotations

import abc
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from safetensors.torch import load_file
from torch import Tensor, nn

from memo_zoo.errors import MemoZooError
from memo_zoo.recipe.network import NetworkConfig
from memo_zoo.model.reference_attention import (
    REFERENCE_KWARG,
    ReferenceRead,
    ReferenceWrite,
    Role,
    install_processors,
)
from memo_zoo.weights import resolve_weights

CALL_KWARG = "memo_call"
"""Key of the per-call object in ``cross_attention_kwargs`` that the site wrappers read."""

SD_UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"

_SITE_KEY = re.compile(r"^((?:down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+)\.(.*)$")


@dataclass(frozen=True)
class Site:
    """A Transformer2DModel position: ``owner[index]`` is the module, ``name`` its plain-UNet name."""

    name: str
    channels: int
    owner: nn.ModuleList
    index: int


def transformer_sites(unet: UNet2DConditionModel) -> list[Site]:
    """Every transformer of the UNet in execution order: down levels, mid block, up levels."""
    groups = [(f"down_blocks.{i}", b) for i, b in enumerate(unet.down_blocks)]
    groups.append(("mid_block", unet.mid_block))
    groups += [(f"up_blocks.{i}", b) for i, b in enumerate(unet.up_blocks)]
    sites = []
    for prefix, block in groups:
        for index, module in enumerate(getattr(block, "attentions", None) or ()):
            sites.append(Site(f"{prefix}.attentions.{index}", int(module.in_channels), block.attentions, index))
    return sites


@dataclass
class SiteCall:
    """Per-call data the site wrappers read (and, for the Reference Net, fill)."""

    reference: ReferenceWrite | ReferenceRead | None
    outputs: list[Tensor | None] = field(default_factory=list)


class SiteBlock(nn.Module, abc.ABC):
    """Stands in for a ``Transformer2DModel`` in ``block.attentions[i]`` with its call signature.

    Runs the wrapped transformer (handing it the per-call reference for its attn1 layers), then
    ``after_spatial``. diffusers' blocks call it like the transformer it replaces. ``index`` is the
    site's position in execution order (down, mid, up).
    """

    def __init__(self, spatial: nn.Module, index: int) -> None:
        super().__init__()
        self.spatial = spatial
        self.index = index

    def forward(
        self,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        timestep: Tensor | None = None,
        added_cond_kwargs: dict[str, Tensor] | None = None,
        class_labels: Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        attention_mask: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[Tensor]:
        call = (cross_attention_kwargs or {}).get(CALL_KWARG)
        if not isinstance(call, SiteCall):
            raise ValueError(f"{type(self).__name__} needs cross_attention_kwargs[{CALL_KWARG!r}]; call the "
                             "Reference Net / Diffusion Net, not their inner UNet")
        out = self.spatial(
            hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            timestep=timestep,
            added_cond_kwargs=added_cond_kwargs,
            class_labels=class_labels,
            cross_attention_kwargs={REFERENCE_KWARG: call.reference},
            attention_mask=attention_mask,
            encoder_attention_mask=encoder_attention_mask,
            return_dict=False,
        )[0]
        out = self.after_spatial(out, call)
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)

    @abc.abstractmethod
    def after_spatial(self, hidden_states: Tensor, call: SiteCall) -> Tensor:
        """What the net does with the spatial transformer's output (N, C, H, W)."""


class SpatialUNet(nn.Module):
    """A ``UNet2DConditionModel`` of ``config``'s geometry with reference-attention processors of
    ``self_role`` on every attn1, and the transformer of each site replaced by
    ``make_block(order, site, transformer)``, ``order`` being the site's position in ``sites``."""

    # Plain-UNet parameter prefixes this net deliberately lacks (not loaded from SD1.5).
    skipped_prefixes: tuple[str, ...] = ()

    def __init__(self, config: NetworkConfig, self_role: Role,
                 make_block: Callable[[int, Site, nn.Module], SiteBlock]) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet2DConditionModel(**config.unet_kwargs())
        self.layers: list[str] = install_processors(self.unet, self_role)
        self.sites: list[Site] = transformer_sites(self.unet)
        for order, site in enumerate(self.sites):
            site.owner[site.index] = make_block(order, site, site.owner[site.index])

    @property
    def site_channels(self) -> list[int]:
        return [site.channels for site in self.sites]

    def _plain_names(self) -> dict[str, str]:
        """plain-UNet parameter name -> this net's name, for the spatial (SD1.5) parameters only."""
        names = {}
        for name in self.unet.state_dict():
            match = _SITE_KEY.match(name)
            if match is None:
                names[name] = name
            elif match.group(2).startswith("spatial."):
                names[f"{match.group(1)}.{match.group(2)[len('spatial.'):]}"] = name
            # other parameters of a site (temporal, audio modules) are not SD1.5's
        return names

    def spatial_state_dict(self) -> dict[str, Tensor]:
        """The SD1.5-part parameters under a plain ``UNet2DConditionModel``'s names."""
        state = self.unet.state_dict()
        return {plain: state[ours] for plain, ours in self._plain_names().items()}

    def load_spatial_state_dict(self, state: Mapping[str, Tensor], source: str) -> None:
        """Load a plain UNet's state dict (e.g. SD1.5's) into the spatial part; strict, or a
        ``MemoZooError`` naming every missing, unexpected and mis-shaped parameter."""
        names = self._plain_names()
        own = self.unet.state_dict()
        missing = sorted(set(names) - set(state))
        unexpected = sorted(k for k in state if k not in names and not k.startswith(self.skipped_prefixes))
        shapes = [f"{k}: {tuple(state[k].shape)} in {source}, {tuple(own[names[k]].shape)} here"
                  for k in sorted(set(names) & set(state)) if state[k].shape != own[names[k]].shape]
        problems = describe_mismatch(missing, unexpected, shapes)
        if problems:
            raise MemoZooError(f"{source} does not fit the {type(self).__name__} of this network config:\n{problems}")
        result = self.unet.load_state_dict({names[k]: state[k] for k in names}, strict=False)
        if result.unexpected_keys:
            raise AssertionError(f"key translation bug: {result.unexpected_keys[:5]}")

    def _fold_timestep(self, timestep: Tensor | float, batch: int, device: torch.device) -> Tensor:
        """Flow time (scalar or (batch,)) -> the UNet's timestep scale, one value per sample."""
        t = torch.as_tensor(timestep, dtype=torch.float32, device=device)
        if t.dim() == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"timestep must be a scalar or ({batch},); got {tuple(t.shape)}")
        return t * self.config.timestep_scale


class RecordingBlock(SiteBlock):
    """Reference Net site: keeps the transformer's output as this site's motion feature (T2)."""

    def after_spatial(self, hidden_states: Tensor, call: SiteCall) -> Tensor:
        call.outputs[self.index] = hidden_states
        return hidden_states


@dataclass(frozen=True)
class ReferenceOutput:
    """One Reference Net call on N images.

    hidden_states: attn1 layer name -> (N, L, C), the tokens the Diffusion Net's reference
                   attention appends to its own (A3).
    blocks:        per site, in site order, the transformer's output (N, C, H, W): the motion
                   features of the temporal modules (T2) when the N images are motion frames.
    """

    hidden_states: dict[str, Tensor]
    blocks: list[Tensor]


class ReferenceNet(SpatialUNet):
    """The Reference Net (A2): SD1.5's spatial UNet on clean latents, recording what the
    Diffusion Net reads. See the module docstring for what it skips."""

    skipped_prefixes = ("conv_norm_out.", "conv_out.")

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__(config, "write", lambda order, site, transformer: RecordingBlock(transformer, order))
        # The prediction head: its output is never read (A2 does not denoise).
        self.unet.conv_norm_out = None
        self.unet.conv_act = None
        self.unet.conv_out = nn.Identity()

    def forward(self, latents: Tensor, image_tokens: Tensor) -> ReferenceOutput:
        """latents (N, c, h, w) clean; image_tokens (N, K, cross_dim) (A4)."""
        if latents.dim() != 4 or latents.shape[1] != self.config.latent_channels:
            raise ValueError(f"latents must be (N, {self.config.latent_channels}, h, w); got {tuple(latents.shape)}")
        _check_tokens(image_tokens, latents.shape[0], self.config.cross_attention_dim)
        call = SiteCall(reference=ReferenceWrite(), outputs=[None] * len(self.sites))
        timestep = self._fold_timestep(0.0, latents.shape[0], latents.device)
        self.unet(latents, timestep, encoder_hidden_states=image_tokens,
                  cross_attention_kwargs={CALL_KWARG: call}, return_dict=False)
        return ReferenceOutput(hidden_states=dict(call.reference.states), blocks=list(call.outputs))


def _check_tokens(tokens: Tensor, batch: int, width: int) -> None:
    if tokens.dim() != 3 or tokens.shape[0] != batch or tokens.shape[2] != width:
        raise ValueError(f"image tokens must be ({batch}, K, {width}); got {tuple(tokens.shape)}")


def describe_mismatch(missing: list[str], unexpected: list[str], shapes: list[str], limit: int = 12) -> str:
    """Readable lines for a state-dict mismatch: the first ``limit`` of each kind, plus counts."""
    lines = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            shown = "\n    ".join(items[:limit])
            more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
            lines.append(f"  {title} ({len(items)}):\n    {shown}{more}")
    return "\n".join(lines)


def read_sd15_unet(path: str | Path, config: NetworkConfig) -> dict[str, Tensor]:
    """SD1.5 UNet weights from a LOCAL diffusers folder, checked against ``config`` (A6).

    ``path`` is either a pipeline folder holding ``unet/`` or the ``unet`` folder itself; it must
    contain ``config.json`` and ``diffusion_pytorch_model.safetensors``. memo-zoo never downloads.
    """
    what = "SD1.5 UNet (diffusers folder: unet/config.json + unet/diffusion_pytorch_model.safetensors)"
    root = resolve_weights(path, what)
    folder = root / "unet" if (root / "unet" / "config.json").exists() else root
    folder = resolve_weights(folder, what, expect=("config.json", SD_UNET_WEIGHTS))
    unet_config = json.loads((folder / "config.json").read_text())
    mismatches = config.geometry_mismatches(unet_config)
    if mismatches:
        raise MemoZooError(f"the UNet at {folder} has another geometry than the network config "
                           f"(preset {config.preset!r}):\n  " + "\n  ".join(mismatches))
    return load_file(str(folder / SD_UNET_WEIGHTS))
