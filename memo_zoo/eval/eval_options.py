"""``EvalOptions``: where an evaluation runs, in one process or sharded over Ray workers (issue 21).

Torch-free (pydantic only): the experiment task's config (``task.evaluation``) holds it, and
recipe validation and ``memo-zoo ls`` must not import torch. The sharded runner itself is
``memo_zoo.eval.sharded``.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from memo_zoo.data.ray_cluster import INSTALL_HINT as RAY_INSTALL_HINT


class EvalOptions(BaseModel):
    """How many workers measure the videos, and on which Ray cluster."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(
        1, ge=1, description="workers the videos are split over (contiguous shards, one Ray actor each); 1 = in "
                             "this process, without Ray; the figures are the same either way")
    engine: Literal["ray"] = Field("ray", description="what runs the workers (only Ray: the optional extra "
                                                      f"{RAY_INSTALL_HINT})")
    address: Optional[str] = Field(
        None, description="Ray cluster to run on (e.g. ray://head:10001 or head:6379); null = $RAY_ADDRESS, else "
                          "a local cluster on 127.0.0.1 started for this process")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs each worker reserves on the cluster (a local "
                                                          "cluster gets workers x this many)")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs each worker reserves (e.g. 0.5: two workers per "
                                                          "GPU); 0 = CPU workers")
