"""Shared by the released-network tests (H5): the golden set, the tiny released nets and factories.

Every size, flag and option comes from the golden folder (``tests.golden``): the tiny parts'
``config.json`` files, their weights and the case JSONs, so the tests run unchanged on another
golden folder of this format. The motion / audio components are the plugins' ``motion_module`` /
``joint_audio`` kinds, made into factories here (the core network never imports plugins).
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from safetensors import safe_open

from memo_zoo.model.released.folder import part_weights_file
from memo_zoo.model.released.networks import (diffusion_net_config, load_diffusion_net, load_reference_net,
                                              reference_net_config)
from memo_zoo.model.released.reference_unet import ReleasedReferenceNet
from memo_zoo.model.released.unet3d import ReleasedDiffusionNet, ReleasedState
from memo_zoo.model.released.unet_config import (ReleasedReferenceNetConfig, ReleasedUNet3DConfig,
                                                motion_module_options)
from memo_zoo.plugin.manager import ComponentFactory
from memo_zoo_plugins.audio_fusion.joint_audio import JointAudioConfig
from memo_zoo_plugins.audio_fusion.joint_audio import build as build_joint_audio
from memo_zoo_plugins.temporal.motion_module import MotionModuleConfig
from memo_zoo_plugins.temporal.motion_module import build as build_motion_module
from tests.golden import GoldenCase, GoldenSet

GOLDEN = GoldenSet.named("memo_released")
TINY = GOLDEN.path("tiny")


def reference_config() -> ReleasedReferenceNetConfig:
    return reference_net_config(TINY)


def diffusion_config(**overrides: Any) -> ReleasedUNet3DConfig:
    """The tiny diffusion_net config, fields replaced as ``from_pretrained(..., **overrides)`` does."""
    return diffusion_net_config(TINY, **overrides)


def motion_options(config: ReleasedUNet3DConfig) -> MotionModuleConfig:
    """The ``motion_module`` options equal to ``motion_module_kwargs`` (every released field read)."""
    options = {name: value for name, (value, _) in motion_module_options(config.motion_kwargs).items()}
    return MotionModuleConfig(**options)


def emotion_classes(config: ReleasedUNet3DConfig) -> int:
    """The released audio block's emotion classes: hard-coded there (Q8), so read off the tiny
    weights' emotion tables, less the null row that ``emo_drop_rate > 0`` adds."""
    with safe_open(str(part_weights_file(TINY, "diffusion_net")), "pt") as weights:
        table = next(k for k in weights.keys() if k.endswith("class_embedder.embedding_table.weight"))
        return weights.get_slice(table).get_shape()[0] - int(config.emo_drop_rate > 0)


def audio_options(config: ReleasedUNet3DConfig) -> JointAudioConfig:
    """The ``joint_audio`` options of the release: its emotion table and its doubled audio residual (Q7, Q8)."""
    return JointAudioConfig(num_emotion_classes=emotion_classes(config), null_emotion_row=config.emo_drop_rate > 0,
                            double_audio_residual=True)


def factories(config: ReleasedUNet3DConfig) -> tuple[ComponentFactory, ComponentFactory]:
    return (ComponentFactory("temporal", motion_options(config), build_motion_module),
            ComponentFactory("audio_fusion", audio_options(config), build_joint_audio))


def tiny_reference_net(released_quirks: bool = True) -> ReleasedReferenceNet:
    return load_reference_net(TINY, released_quirks=released_quirks).requires_grad_(False)


def tiny_diffusion_net(released_quirks: bool = True, **overrides: Any) -> ReleasedDiffusionNet:
    net = load_diffusion_net(TINY, *factories(diffusion_config(**overrides)), released_quirks=released_quirks,
                             **overrides)
    return net.requires_grad_(False)


def release_layout(video: torch.Tensor) -> torch.Tensor:
    """(B, F, c, h, w) <-> (B, c, F, h, w): the zoo's video layout and the release's."""
    return video.transpose(1, 2)


def reference_features(net: ReleasedReferenceNet, case: GoldenCase, clip: int) -> dict[str, torch.Tensor]:
    """The pipeline's reference call of a clip (case d's ``calls_in_order``): the two CFG branches' copies."""
    latents = case[f"clip{clip}.ref_image_latents"]
    tokens = case["encoder_hidden_states"]
    rows = latents.repeat(tokens.shape[0], 1, 1, 1)
    return net(rows, torch.zeros(()), tokens)


def stream_case_d(reference_net: ReleasedReferenceNet, net: ReleasedDiffusionNet, case: GoldenCase,
                  calls: list[dict]) -> Iterator[tuple[dict, torch.Tensor]]:
    """Drive one diffusion net through ``calls`` (the case's ``sequence``) the way the pipeline
    does, and yield each call with its CFG-batch output in the release layout (B, c, F, h, w).

    The release's flags map onto the state: ``is_new_audio`` = a fresh state, ``update_past_memory``
    (or ``is_new_audio``) = one update with the clip's motion frames; otherwise the state is read.
    """
    tokens = case["encoder_hidden_states"]
    batch = tokens.shape[0]
    state: ReleasedState | None = None
    features: dict[str, torch.Tensor] = {}
    feature_clip = None
    for call in calls:
        clip, step = call["clip"], call["step"]
        latents = case[f"clip{clip}.step{step}.latents"]
        if feature_clip != clip:  # the pipeline runs the reference net once per clip
            features, feature_clip = reference_features(reference_net, case, clip), clip
        if call["is_new_audio"] or state is None:
            state = net.new_state(batch)
        if call["is_new_audio"] or call["update_past_memory"]:
            state = net.update_state(state, net.motion_features(features, batch, tuple(latents.shape[-2:])))
        out = net(release_layout(torch.cat([latents] * batch)), case[f"clip{clip}.step{step}.timestep"], tokens,
                  case[f"clip{clip}.audio_embedding_cfg"], case[f"clip{clip}.audio_emotion_cfg"], features, state,
                  case["uc_mask"])
        yield call, release_layout(out)
