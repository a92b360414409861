"""``task: {kind: preprocess}``: run the recipe's data pipeline (spec §7) over its dataset.

It builds ``data.dataset`` and the stages of ``data.preprocess`` (in recipe order), runs them with
``memo_zoo.data.pipeline.run_pipeline`` into ``out_dir`` (resuming a run that stopped), and logs
to MLflow the counts per stage as metrics, the report (one line per clip per stage) and a table
of every dropped clip with its stage and reason.
"""

from __future__ import annotations

from memo_zoo.data.pipeline import REPORT_FILE, PipelineResult, run_pipeline
from memo_zoo.errors import MemoZooError
from memo_zoo.runner import RunContext
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.tasks.configs import PreprocessConfig


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


class PreprocessTask:
    def __init__(self, config: PreprocessConfig):
        self.config = config

    def run(self, context: RunContext) -> None:
        data = context.recipe.data
        if data.dataset is None:
            raise MemoZooError("task preprocess needs data.dataset in the recipe (the clips to preprocess)")
        dataset = context.build("dataset", data.dataset)
        stages = [context.build("preprocess", config) for config in data.preprocess]
        out_dir = self.config.out_dir if self.config.out_dir.is_absolute() else context.workdir / self.config.out_dir
        try:
            result = run_pipeline(dataset, stages, out_dir, resume=self.config.resume,
                                  max_clips=self.config.max_clips, progress=context.progress)
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


def build(config: PreprocessConfig) -> PreprocessTask:
    return PreprocessTask(config)
