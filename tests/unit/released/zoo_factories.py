"""Slot factories for the released network's components, as the registry will give them (H6).

``factories(slot, value)`` is what ``memo_zoo.recipe.components.slot_factories(registry)`` returns:
``value`` (``{kind: ..., **options}`` or a config object) validated by the kind's config class,
``kind`` included, so a saved network records it. The ``motion_module`` / ``joint_audio`` kinds
are built here from the plugins' modules until their ``plugin.py`` registers them.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

from pydantic import BaseModel

from memo_zoo.plugin.manager import ComponentFactory
from memo_zoo_plugins.audio_fusion.joint_audio import JointAudioConfig
from memo_zoo_plugins.audio_fusion.joint_audio import build as build_joint_audio
from memo_zoo_plugins.temporal.motion_module import MotionModuleConfig
from memo_zoo_plugins.temporal.motion_module import build as build_motion_module


class MotionModuleKind(MotionModuleConfig):
    kind: Literal["motion_module"] = "motion_module"


class JointAudioKind(JointAudioConfig):
    kind: Literal["joint_audio"] = "joint_audio"


KINDS = {"temporal": {"motion_module": (MotionModuleKind, build_motion_module)},
         "audio_fusion": {"joint_audio": (JointAudioKind, build_joint_audio)}}


def factories(slot: str, value: BaseModel | Mapping[str, Any]) -> ComponentFactory:
    data = value.model_dump() if isinstance(value, BaseModel) else dict(value)
    config_class, build = KINDS[slot][data["kind"]]
    return ComponentFactory(slot, config_class.model_validate(data), build)
