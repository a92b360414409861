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
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from memo_zoo.generate.config import GenerateConfig
from memo_zoo.tasks.experiment_config import ExperimentConfig
from memo_zoo.tasks.stages import AUTOENCODER
from memo_zoo.train.config import TrainConfig

__all__ = ["ExperimentConfig", "GenerateConfig", "PreprocessConfig", "RayOptions", "RayStageOptions", "SmokeConfig",
           "TrainTaskConfig"]


class SmokeConfig(BaseModel):
    """Build every component named in the recipe with small sizes."""

    model_config = ConfigDict(extra="forbid")

    require_components: bool = Field(
        True, description="fail when the recipe names no component besides the task")


class RayStageOptions(BaseModel):
    """What each Ray worker of one pipeline stage holds (``task.ray.stages.<stage label>``)."""

    model_config = ConfigDict(extra="forbid")

    num_gpus: float = Field(0.0, ge=0, description="GPUs each worker of this stage holds (fractions share "
                                                   "one); above 0 the stage runs as a pool of actors, each "
                                                   "given its own GPU by Ray, so the stage's device: cuda "
                                                   "is that GPU")
    num_cpus: float = Field(1.0, gt=0, description="CPUs each worker of this stage holds")
    actors: Optional[int] = Field(None, ge=1, description="run the stage as this many actors, each building it "
                                                          "once (a stage that loads a model); default: Ray "
                                                          "tasks, or with num_gpus as many actors as the "
                                                          "cluster's GPUs hold")


class RayOptions(BaseModel):
    """Where and how ``engine: ray`` runs the pipeline (docs/scale.md, "Preprocessing on Ray")."""

    model_config = ConfigDict(extra="forbid")

    address: Optional[str] = Field(
        None, description="the Ray cluster: host:port of its head (printed by `ray start --head`), "
                          "ray://host:10001 (Ray Client) or auto (the cluster `ray start` runs on this "
                          "machine); default: the RAY_ADDRESS environment variable, else a private cluster "
                          "on this machine, started and stopped by the run (127.0.0.1 only, no dashboard)")
    num_cpus: Optional[int] = Field(None, ge=1, description="CPUs of the private local cluster (default: "
                                                            "this machine's); not with an address")
    num_gpus: Optional[int] = Field(None, ge=0, description="GPUs of the private local cluster (default: "
                                                            "this machine's); not with an address")
    connect_timeout: float = Field(10.0, gt=0, description="seconds to wait for the head at address to "
                                                           "answer before giving up")
    stages: dict[str, RayStageOptions] = Field(
        default_factory=dict, description="per stage label (the report's stage names: the kind, numbered "
                                          "when a kind appears twice: resize_1): its workers' GPUs, CPUs, "
                                          "actors")


class PreprocessConfig(BaseModel):
    """Filter and crop the dataset's clips into MEMO's layout (data/video + metadata.jsonl)."""

    model_config = ConfigDict(extra="forbid")

    out_dir: Path = Field(..., description="where the clips, metadata.jsonl and report.jsonl go "
                                           "(relative to the working directory)")
    resume: bool = Field(True, description="continue a run that stopped, skipping clips already in the "
                                           "report; false starts over (removes the pipeline's earlier outputs)")
    max_clips: Optional[int] = Field(None, ge=1, description="process only the dataset's first N clips")
    engine: Literal["local", "ray"] = Field(
        "local", description="local: one process, clip after clip; ray: the clips spread over a Ray cluster "
                             "(pip install 'memo-zoo[ray]'; options under ray), with the same report, "
                             "metadata.jsonl and files")
    ray: RayOptions = Field(default_factory=RayOptions, description="engine ray: the cluster and each stage's "
                                                                    "workers")

    @model_validator(mode="after")
    def _ray_options_need_ray(self) -> "PreprocessConfig":
        # Compared with the defaults rather than "was it given": a dumped recipe (recipe.yaml) spells
        # every default out, and must validate again.
        if self.engine != "ray" and self.ray != RayOptions():
            raise ValueError("ray options apply to engine: ray only; set engine: ray, or leave ray out")
        return self


class TrainTaskConfig(TrainConfig):
    """Train the MEMO network (spec §5); optionally its autoencoder first (spec A1)."""

    train_vae: Annotated[Optional[Any], AUTOENCODER] = Field(
        None, description="when model.vae is an sd_vae whose weights folder does not exist yet, train it first on "
                          "data.dataset's frames with these options (task train_vae's; size and fps come from "
                          "samples)")
