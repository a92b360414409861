"""The slots of memo-zoo: the swappable parts of MEMO, each filled by registered components.

A slot's ``build_args`` are the keyword arguments its host passes to a component's factory
besides the config (sizes that the host, not the recipe, decides); ``smoke_build_args`` are
small values for them that ``task: smoke`` and the contract tests use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Slot:
    name: str
    hook: str
    summary: str
    build_args: tuple[str, ...] = ()
    smoke_build_args: dict[str, Any] = field(default_factory=dict)


SLOTS: tuple[Slot, ...] = (
    Slot("temporal", "temporal_components",
         "temporal module in every Diffusion Net block: memory / motion-frame context (spec §2)",
         ("channels",), {"channels": 32}),
    Slot("audio_fusion", "audio_fusion_components",
         "audio module in every Diffusion Net block, with emotion conditioning (spec §3)",
         ("channels", "audio_dim"), {"channels": 32, "audio_dim": 16}),
    Slot("emotion_detector", "emotion_detector_components",
         "audio -> emotion label per video segment (spec E4, E5, §4)"),
    Slot("audio_encoder", "audio_encoder_components",
         "audio -> per-frame audio tokens (spec A5)"),
    Slot("image_encoder", "image_encoder_components",
         "reference image -> cross-attention context tokens (spec A4)"),
    Slot("vae", "vae_components", "frames <-> latents (spec A1)"),
    Slot("scheduler", "scheduler_components", "sampler of the flow-matching ODE (spec I3)"),
    Slot("dataset", "dataset_components", "training / evaluation clips (spec §11)"),
    Slot("preprocess", "preprocess_components", "data-pipeline stage that keeps or drops a clip (spec §7)"),
    Slot("metric", "metric_components", "evaluation metric (spec §8)"),
    Slot("task", "task_components", "what `memo-zoo run` does with a recipe (smoke, train, generate, ...)"),
)

SLOT_BY_NAME: dict[str, Slot] = {slot.name: slot for slot in SLOTS}
