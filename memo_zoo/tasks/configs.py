"""Options of the core tasks (``memo_zoo.tasks.plugin``): pydantic only, no torch.

``plugin.py`` registers the tasks without importing their modules, so ``memo-zoo ls``,
``validate`` and ``schema`` import no torch, MLflow or training code (issue 17.8). ``smoke``,
``preprocess`` and ``train`` import their configs from here, so the old import paths
(``memo_zoo.tasks.train.TrainTaskConfig``, ...) stay; ``generate`` and ``experiment`` already have
light homes (``memo_zoo.generate.config``, ``memo_zoo.tasks.experiment_config``), re-exported here
so that the plugin reads every task config from one module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from memo_zoo.generate.config import GenerateConfig
from memo_zoo.tasks.experiment_config import ExperimentConfig
from memo_zoo.tasks.stages import AUTOENCODER
from memo_zoo.train.config import TrainConfig

__all__ = ["ExperimentConfig", "GenerateConfig", "PreprocessConfig", "SmokeConfig", "TrainTaskConfig"]


class SmokeConfig(BaseModel):
    """Build every component named in the recipe with small sizes."""

    model_config = ConfigDict(extra="forbid")

    require_components: bool = Field(
        True, description="fail when the recipe names no component besides the task")


class PreprocessConfig(BaseModel):
    """Filter and crop the dataset's clips into MEMO's layout (data/video + metadata.jsonl)."""

    model_config = ConfigDict(extra="forbid")

    out_dir: Path = Field(..., description="where the clips, metadata.jsonl and report.jsonl go "
                                           "(relative to the working directory)")
    resume: bool = Field(True, description="continue a run that stopped, skipping clips already in the "
                                           "report; false starts over (removes the pipeline's earlier outputs)")
    max_clips: Optional[int] = Field(None, ge=1, description="process only the dataset's first N clips")


class TrainTaskConfig(TrainConfig):
    """Train the MEMO network (spec §5); optionally its autoencoder first (spec A1)."""

    train_vae: Annotated[Optional[Any], AUTOENCODER] = Field(
        None, description="when model.vae is an sd_vae whose weights folder does not exist yet, train it first on "
                          "data.dataset's frames with these options (task train_vae's; size and fps come from "
                          "samples)")
