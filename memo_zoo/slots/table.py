"""The one table of slots: adding a slot is a module beside this one plus a line here.

The order is the order of ``memo-zoo ls`` and of the slot table in docs/architecture.md.
"""

from __future__ import annotations

from memo_zoo.slots import (audio_encoder, audio_fusion, dataset, emotion_detector, image_encoder, metric,
                            preprocess, scheduler, task, temporal, vae)
from memo_zoo.slots.slot import Slot

SLOTS: tuple[Slot, ...] = (
    temporal.SLOT,
    audio_fusion.SLOT,
    emotion_detector.SLOT,
    audio_encoder.SLOT,
    image_encoder.SLOT,
    vae.SLOT,
    scheduler.SLOT,
    dataset.SLOT,
    preprocess.SLOT,
    metric.SLOT,
    task.SLOT,
)

SLOT_BY_NAME: dict[str, Slot] = {slot.name: slot for slot in SLOTS}
