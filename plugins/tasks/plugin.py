"""Registers the built-in tasks."""

from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo_plugins.tasks import smoke


@hookimpl
def task_components() -> list[ComponentSpec]:
    return [ComponentSpec("smoke", smoke.SmokeConfig, smoke.build,
                          "build every component the recipe names and log them to MLflow")]
