"""A view of a ``TrackedRun`` that names everything it logs with a prefix.

Used when one run holds two trainings, e.g. an experiment variant that also trains the stage 1
shared by all variants: the stage-1 loss curve goes to ``stage1.loss`` at its own steps and the
variant's own training to ``loss``, instead of two curves written over each other at steps 0..N.
"""

from __future__ import annotations

from typing import Any


class PrefixedRun:
    """Metrics and tags are logged as ``<prefix><name>``, artifacts under ``<prefix>`` as a folder."""

    def __init__(self, run: Any, prefix: str):
        if not prefix or prefix.strip(".") == "":
            raise ValueError(f"a run prefix needs a name, got {prefix!r}")
        self._run = run
        self.prefix = prefix if prefix.endswith(".") else prefix + "."

    def _folder(self, artifact_file: str) -> str:
        return f"{self.prefix.rstrip('.')}/{artifact_file}"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._run.log_metrics({self.prefix + k: v for k, v in metrics.items()}, step=step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._run.set_tags({self.prefix + k: v for k, v in tags.items()})

    def log_params(self, params: dict[str, Any]) -> None:
        self._run.log_params({self.prefix.rstrip("."): params})

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self._run.log_dict(data, self._folder(artifact_file))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._run.log_text(text, self._folder(artifact_file))

    def log_table(self, data: dict[str, list[Any]], artifact_file: str) -> None:
        self._run.log_table(data, self._folder(artifact_file))

    def log_artifact(self, path: Any, artifact_path: str | None = None) -> None:
        self._run.log_artifact(path, self._folder(artifact_path) if artifact_path else self.prefix.rstrip("."))

    def __getattr__(self, name: str) -> Any:
        # id, client, experiment_id ... of the underlying run.
        return getattr(self._run, name)
