"""The trainings the train and experiment tasks may run first, reached through the registry.

``train_vae:`` (train, experiment) trains the recipe's ``sd_vae`` autoencoder when its folder does
not exist yet; ``train_detector:`` (experiment) trains the emotion detector's head. Both are tasks
of built-in components (``train_vae``, ``train_emotion``), registered by those components'
plugins; the core names them by kind (``memo_zoo.recipe.stage.Stage``) and uses them only
through the protocols below, so it never imports a built-in.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Protocol

from memo_zoo.recipe.stage import Stage

if TYPE_CHECKING:
    from pydantic import BaseModel

    from memo_zoo.data.samples import SampleConfig
    from memo_zoo.runner import RunContext

# The task kinds the stage fields hold the options of.
AUTOENCODER = Stage("train_vae")
EMOTION_DETECTOR = Stage("train_emotion")


class AutoencoderOptions(Protocol):
    """The options of the ``train_vae`` task, as the train and experiment tasks use them."""

    def for_samples(self, samples: SampleConfig) -> AutoencoderOptions:
        """These options at the frame size and rate of the MEMO training samples."""

    def key_document(self) -> dict[str, Any]:
        """What the autoencoder's weights depend on, for the keys of the trainings that read it."""

    def target_folder(self, recipe: BaseModel) -> Path:
        """Where the autoencoder is written (and where ``model.vae`` loads it from)."""


class AutoencoderTraining(Protocol):
    """The ``train_vae`` task built from ``AutoencoderOptions``."""

    def ensure(self, context: RunContext) -> Path:
        """The trained folder: reused when trained with the same options, else trained now."""


class EmotionDetectorOptions(Protocol):
    """The options of the ``train_emotion`` task, as the experiment task uses them."""

    out: Optional[Path]  # where the head is saved; None: the detector's own checkpoint path


def stage_task(context: RunContext, stage: Stage, options: Any) -> Any:
    """The registered task ``stage.task`` built with ``options`` (the value of its stage field)."""
    return context.registry.get("task", stage.task).spec.factory(options)
