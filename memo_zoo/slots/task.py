"""The ``task`` slot: what ``memo-zoo run`` does with a recipe (smoke, train, generate, ...).

``RunContext`` (``memo_zoo.runner``) is named in the annotations below but not imported: the runner
sits at the top of the core and the slots at its bottom (pyproject, ``[tool.importlinter]``); the
annotations are never evaluated.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from memo_zoo.slots.slot import Slot


@runtime_checkable
class Task(Protocol):
    """What ``memo-zoo run`` does with a recipe, chosen by its ``task: {kind: ...}`` field.

    ``factory(config)`` returns an object with ``run(context) -> None``, where ``context`` is a
    ``memo_zoo.runner.RunContext``: the validated recipe, the registry (``context.build(slot,
    config)``), the MLflow run, the working folder, the sweep variant's name and a progress-bar
    helper. Two optional methods: ``preflight(context)``, called with no MLflow run before any run
    is created (a check that the task can start at all), and ``finish_sweep(context, children)``,
    called on a sweep's parent run once every variant has finished, with the variants' run ids.
    A task config with an integer ``seeds`` above 1 is run once per seed (the recipe's ``seed``,
    ``seed + 1``, ...) as nested runs ``<variant>.seed<S>`` tagged ``memo_zoo.seed``.
    """

    def run(self, context: RunContext) -> None: ...  # noqa: F821 (module docstring)


SLOT = Slot(
    name="task",
    recipe_path="task",
    description="what `memo-zoo run` does with this recipe",
    summary="what `memo-zoo run` does with a recipe (smoke, train, generate, ...)",
    protocol=Task,
    required=True,
)
