"""MLflow runs with explicit ids: batched params, artifacts, and FAILED status on any error.

Uses ``MlflowClient`` (not the fluent, global-state API) so that a sweep's parent and child runs
are explicit and a run that raises, ``KeyboardInterrupt`` included, is always closed as FAILED
with the error attached.
"""

from __future__ import annotations

import os
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from memo_zoo.tracking.flatten import batches, flatten
from memo_zoo.tracking.uri import DEFAULT_ARTIFACT_DIR, is_local_store

if TYPE_CHECKING:
    from mlflow import MlflowClient

PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
MAX_TAG_LENGTH = 5000


def _mlflow_environment() -> None:
    # mlflow 3 refuses a plain-folder store unless asked; users who point us at one mean it.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


class TrackedRun:
    """One open MLflow run."""

    def __init__(self, client: "MlflowClient", run_id: str, experiment_id: str):
        self.client = client
        self.id = run_id
        self.experiment_id = experiment_id

    def log_params(self, params: dict[str, Any]) -> None:
        """Log a nested mapping as flattened params, in batches of MLflow's maximum size."""
        from mlflow.entities import Param

        for batch in batches(flatten(params)):
            self.client.log_batch(self.id, params=[Param(k, v) for k, v in batch.items()])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        entries = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for start in range(0, len(entries), 1000):
            self.client.log_batch(self.id, metrics=entries[start:start + 1000])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.id, tags=[RunTag(k, str(v)[:MAX_TAG_LENGTH]) for k, v in tags.items()])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.id, text, artifact_file)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.id, data, artifact_file)

    def log_table(self, data: dict[str, list[Any]], artifact_file: str) -> None:
        self.client.log_table(self.id, data=data, artifact_file=artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.id, str(path), artifact_path)


class Tracker:
    """Opens runs in one experiment of one tracking store."""

    def __init__(self, uri: str, experiment: str, artifact_dir: Path | None = None, workdir: Path | None = None):
        _mlflow_environment()
        from mlflow import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment_id = self._experiment(experiment, artifact_dir, workdir or Path.cwd())

    def _experiment(self, name: str, artifact_dir: Path | None, workdir: Path) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if artifact_dir is not None or is_local_store(self.uri):
            location = (artifact_dir or workdir / DEFAULT_ARTIFACT_DIR).resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:
            # Another process created it between our look-up and create.
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    @contextmanager
    def run(self, name: str, parent: TrackedRun | None = None, tags: dict[str, str] | None = None) -> Iterator[TrackedRun]:
        """An open run, closed FINISHED on success and FAILED (error attached) on any exception."""
        all_tags = {RUN_NAME_TAG: name, **(tags or {})}
        if parent is not None:
            all_tags[PARENT_RUN_TAG] = parent.id
        created = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        run = TrackedRun(self.client, created.info.run_id, self.experiment_id)
        try:
            yield run
        except BaseException as error:
            self._fail(run, error)
            raise
        self.client.set_terminated(run.id, "FINISHED")

    def _fail(self, run: TrackedRun, error: BaseException) -> None:
        summary = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        try:
            run.set_tags({"error": summary})
            run.log_text("".join(traceback.format_exception(error)), "error.txt")
        finally:
            # The status is what users filter on: set it even if logging the error failed.
            self.client.set_terminated(run.id, "FAILED")
