"""Building the release's two UNets from a release folder (issue 18): config, then strict weights.

``load_reference_net(release)`` and ``load_diffusion_net(release, temporal, audio_fusion)`` read
the part's ``config.json`` (:func:`~memo_zoo.model.released.folder.read_part_config`, validated by
:mod:`.unet_config`), build the network on the meta device (nothing allocated twice at full size)
and take every tensor from the part's weights file with
:func:`~memo_zoo.model.released.folder.load_strict` (any missing, unexpected or mis-shaped key is
an error naming it). ``overrides`` replace config fields as ``from_pretrained(..., **kwargs)``
does in the release (the golden variant sets ``use_inflated_groupnorm=False`` that way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from memo_zoo.errors import MemoZooError
from memo_zoo.model.released.folder import (CONFIG_FILE, load_strict, part_named, read_part_config,
                                            read_part_state, resolve_release)
from memo_zoo.model.released.reference_unet import ReleasedReferenceNet
from memo_zoo.model.released.unet3d import ReleasedDiffusionNet
from memo_zoo.model.released.unet_config import ReleasedReferenceNetConfig, ReleasedUNet3DConfig
from memo_zoo.slots.audio_fusion import AudioFusionFactory
from memo_zoo.slots.temporal import TemporalFactory


def _config_source(folder: Path, part: str) -> str:
    return str(part_named(part).folder(folder) / CONFIG_FILE)


def reference_net_config(release: str | Path, **overrides: Any) -> ReleasedReferenceNetConfig:
    """The release's ``reference_net/config.json``, with ``overrides`` applied."""
    folder = resolve_release(release)
    data = {**read_part_config(folder, "reference_net"), **overrides}
    return ReleasedReferenceNetConfig.from_mapping(data, _config_source(folder, "reference_net"))


def diffusion_net_config(release: str | Path, **overrides: Any) -> ReleasedUNet3DConfig:
    """The release's ``diffusion_net/config.json``, with ``overrides`` applied."""
    folder = resolve_release(release)
    data = {**read_part_config(folder, "diffusion_net"), **overrides}
    return ReleasedUNet3DConfig.from_mapping(data, _config_source(folder, "diffusion_net"))


def _fill(module: nn.Module, folder: Path, part: str) -> nn.Module:
    source = str(part_named(part).folder(folder))
    load_strict(module, read_part_state(folder, part), source)
    left = [name for name, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        # a component with a non-persistent buffer: it is not in the file, so it cannot be filled
        raise MemoZooError(f"{source}: {len(left)} tensor(s) are not stored in the checkpoint and were "
                           f"left unbuilt: {', '.join(left[:5])}")
    return module.eval()


def load_reference_net(release: str | Path, *, released_quirks: bool = False,
                       **overrides: Any) -> ReleasedReferenceNet:
    """The release's Reference Net (A2) with its weights, in eval mode."""
    folder = resolve_release(release)
    config = reference_net_config(folder, **overrides)
    with torch.device("meta"):
        net = ReleasedReferenceNet(config, released_quirks=released_quirks)
    return _fill(net, folder, "reference_net")


def load_diffusion_net(release: str | Path, temporal: TemporalFactory, audio_fusion: AudioFusionFactory, *,
                       released_quirks: bool = False, **overrides: Any) -> ReleasedDiffusionNet:
    """The release's Diffusion Net (A3) with its weights, in eval mode; ``temporal`` /
    ``audio_fusion`` build the motion and audio modules (the ``motion_module`` / ``joint_audio``
    kinds hold the released layout)."""
    folder = resolve_release(release)
    config = diffusion_net_config(folder, **overrides)
    with torch.device("meta"):
        net = ReleasedDiffusionNet(config, temporal, audio_fusion, released_quirks=released_quirks)
    return _fill(net, folder, "diffusion_net")
