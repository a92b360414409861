"""Small plugins used by tests to drive the runner (tasks that raise, record, ...)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.manager import Registry, load_registry


class ExplodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: str = Field("value", description="'value' raises ValueError, 'interrupt' KeyboardInterrupt")
    after_metric: bool = True


class ExplodeTask:
    def __init__(self, config: ExplodeConfig):
        self.config = config

    def run(self, context) -> None:
        if self.config.after_metric:
            context.run.log_metrics({"progress": 0.5}, step=1)
        if self.config.error == "interrupt":
            raise KeyboardInterrupt
        raise ValueError("the task failed on purpose")


class RecordConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float = 1.0


class RecordTask:
    """Logs its option as a metric and remembers which variants ran."""

    seen: list[tuple[str | None, float, int]] = []

    def __init__(self, config: RecordConfig):
        self.config = config

    def run(self, context) -> None:
        RecordTask.seen.append((context.variant, self.config.value, context.recipe.seed))
        context.run.log_metrics({"value": self.config.value}, step=0)

    finished: list[tuple[str, dict[str, str]]] = []

    def finish_sweep(self, context, children: dict[str, str]) -> None:
        RecordTask.finished.append((context.run.id, dict(children)))


class TasksForTests:
    @hookimpl
    def task_components(self):
        return [ComponentSpec("explode", ExplodeConfig, ExplodeTask, "raises"),
                ComponentSpec("record", RecordConfig, RecordTask, "logs its value")]


def registry_with_test_tasks() -> Registry:
    return load_registry(disabled=(), extra_plugins=[("test_tasks", TasksForTests())])
