"""``task: {kind: preprocess}``: run the recipe's data pipeline (spec §7) over its dataset.

It builds ``data.dataset`` and the stages of ``data.preprocess`` (in recipe order), runs them with
``memo_zoo.data.pipeline.run_pipeline`` into ``out_dir`` (resuming a run that stopped), and logs
to MLflow the counts per stage as metrics, the report (one line per clip per stage) and a table
of every dropped clip with its stage and reason.

``engine: ray`` runs the same stages with ``memo_zoo.data.ray_pipeline.run_pipeline_on_ray`` over
a Ray cluster (``task.ray``), with the same report, manifest and files. The stages are not built
here then: each Ray worker builds its own from the stage's registry factory, so that a model loads
where it runs (on its GPU) and nothing unpicklable has to travel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel

from memo_zoo.data.pipeline import REPORT_FILE, PipelineResult, run_pipeline, stage_labels
from memo_zoo.data.ray_pipeline import RayStage, run_pipeline_on_ray
from memo_zoo.errors import MemoZooError
from memo_zoo.runner import RunContext
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.tasks.configs import PreprocessConfig, RayOptions, RayStageOptions


def _metrics(result: PipelineResult) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for label, counts in result.counts.items():
        metrics.update({f"preprocess.{label}.in": counts.seen, f"preprocess.{label}.kept": counts.kept,
                        f"preprocess.{label}.dropped": counts.dropped,
                        f"preprocess.{label}.out": counts.outputs})
    metrics["preprocess.clips_out"] = len(result.clips)
    metrics["preprocess.dropped"] = len(result.dropped)
    metrics["preprocess.processed"] = result.processed
    return metrics


def ray_stages(context: RunContext, configs: Sequence[BaseModel], options: RayOptions) -> list[RayStage]:
    """The recipe's stages as the Ray engine ships them, with their workers' resources."""
    labels = stage_labels([config.kind for config in configs])
    unknown = sorted(set(options.stages) - set(labels))
    if unknown:
        raise MemoZooError(f"task.ray.stages names {', '.join(unknown)}, not a stage of data.preprocess "
                           f"(its stages: {', '.join(labels) or 'none'})")
    stages = []
    for config, label in zip(configs, labels):
        resources = options.stages.get(label, RayStageOptions())
        stages.append(RayStage(name=config.kind, build=context.registry.factory("preprocess", config), config=config,
                               num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, actors=resources.actors))
    return stages


class PreprocessTask:
    def __init__(self, config: PreprocessConfig):
        self.config = config

    def run(self, context: RunContext) -> None:
        data = context.recipe.data
        if data.dataset is None:
            raise MemoZooError("task preprocess needs data.dataset in the recipe (the clips to preprocess)")
        dataset = context.build("dataset", data.dataset)
        out_dir = self.config.out_dir if self.config.out_dir.is_absolute() else context.workdir / self.config.out_dir
        try:
            result = self._run(context, dataset, list(data.preprocess), out_dir)
        except MemoZooError:
            # Nothing survived (or nothing to do): the report still says why; keep it with the run.
            report = out_dir / REPORT_FILE
            if report.exists():
                context.run.log_artifact(report)
            raise
        context.run.log_metrics(_metrics(result))
        context.run.log_artifact(result.report)
        context.run.log_artifact(result.manifest)
        context.run.log_table({"clip": [d.path for d in result.dropped], "stage": [d.stage for d in result.dropped],
                               "reason": [d.reason for d in result.dropped]}, "dropped_clips.json")

    def _run(self, context: RunContext, dataset: Any, configs: list[BaseModel], out_dir: Path) -> PipelineResult:
        if self.config.engine == "ray":
            options = self.config.ray
            return run_pipeline_on_ray(dataset, ray_stages(context, configs, options), out_dir,
                                       resume=self.config.resume, max_clips=self.config.max_clips,
                                       progress=context.progress, address=options.address,
                                       num_cpus=options.num_cpus, num_gpus=options.num_gpus,
                                       connect_timeout=options.connect_timeout, address_field="task.ray.address")
        stages = [context.build("preprocess", config) for config in configs]
        return run_pipeline(dataset, stages, out_dir, resume=self.config.resume, max_clips=self.config.max_clips,
                            progress=context.progress)


def build(config: PreprocessConfig) -> PreprocessTask:
    return PreprocessTask(config)
