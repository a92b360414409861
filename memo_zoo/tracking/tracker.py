"""MLflow runs with explicit ids: batched params, artifacts, and FAILED status on any error.

Uses ``MlflowClient`` (not the fluent, global-state API) so that a sweep's parent and child runs
are explicit and a run that raises, ``KeyboardInterrupt`` included, is always closed as FAILED
with the error attached.

Opening the store is made safe and quick to fail:

- sqlite: MLflow creates and migrates the schema on the first connection, with no lock of its own,
  so two first runs started together in a new folder both ran the migrations and the loser died
  on ``duplicate column``. ``Tracker`` holds an exclusive ``fcntl.flock`` on ``<db>.lock`` beside
  the database while it opens the store and finds or creates its experiment.
- http(s): MLflow's client retries a refused connection for about four minutes before its
  traceback. ``Tracker`` first makes one request with no retries and a short timeout, and raises
  ``MemoZooError`` naming the URI when no server answers (any HTTP answer, even an error status,
  means a server is there: what it says is MLflow's to report).
"""

from __future__ import annotations

import fcntl
import os
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from memo_zoo.errors import MemoZooError
from memo_zoo.tracking.flatten import batches, flatten
from memo_zoo.tracking.uri import DEFAULT_ARTIFACT_DIR, is_local_store

if TYPE_CHECKING:
    from mlflow import MlflowClient

PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
MAX_TAG_LENGTH = 5000
# Long enough for a loaded server to answer one request, short enough that a wrong URI fails at once.
PROBE_TIMEOUT_SECONDS = 10.0


def _mlflow_environment() -> None:
    # mlflow 3 refuses a plain-folder store unless asked; users who point us at one mean it.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:`` URI; None for other stores and in-memory databases."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Exclusive lock on ``<db>.lock`` for a sqlite store (module docstring); nothing for others.

    The lock file stays beside the database (removing it would let a third process lock a new
    file while a second still holds the old one). The database's folder is made here, as MLflow
    would make it, so that a store in a new folder is locked too.
    """
    database = sqlite_path(uri)
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_reachable(uri: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """Raise MemoZooError when no server answers at an http(s) tracking URI (module docstring)."""
    if not uri.lower().startswith(("http://", "https://")):
        return
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    # MLflow's own request function, so that its credentials, TLS and proxy settings apply to the
    # probe as they will to the run; only the retries and the timeout differ.
    try:
        http_request(get_default_host_creds(uri), "/api/2.0/mlflow/experiments/search", "GET",
                     max_retries=0, backoff_factor=0, timeout=timeout, raise_on_status=False,
                     params={"max_results": 1})
    except MlflowException as error:
        raise MemoZooError(f"the MLflow tracking server at {uri} could not be reached ({_reason(error)}); "
                           "start it, or fix tracking.uri / MEMO_ZOO_TRACKING_URI") from None


def _reason(error: Exception) -> str:
    """The connection failure under MLflow's wrapping (urllib3's reason: refused, timed out, no such
    host), else MLflow's own message; its "Max retries exceeded" would mislead after no retry."""
    cause = error.__context__
    reason = getattr(cause.args[0], "reason", None) if cause is not None and cause.args else None
    return str(reason) if reason is not None else str(getattr(error, "message", error))


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
        check_reachable(uri)
        with store_lock(uri):
            # The first use of the client creates (or migrates) a sqlite schema: see store_lock.
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
