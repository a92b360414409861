"""``task: {kind: smoke}``: build every component a recipe names and record what was built.

It is the quickest end-to-end check of an installation and of a recipe: plugins load, options
validate, factories run with the slot's small build sizes, and MLflow receives a table of the
components with their parameter counts.
"""

from __future__ import annotations

import time

import torch

from memo_zoo.errors import MemoZooError
from memo_zoo.recipe.schema import named_components
from memo_zoo.runner import RunContext
from memo_zoo.slots import SLOT_BY_NAME
# The torch-free home of these names (issue 17.8); imported here so that old import paths still work.
from memo_zoo.tasks.configs import SmokeConfig


def _parameter_count(component: object) -> int:
    if isinstance(component, torch.nn.Module):
        return sum(p.numel() for p in component.parameters())
    return 0


class SmokeTask:
    def __init__(self, config: SmokeConfig):
        self.config = config

    def run(self, context: RunContext) -> None:
        targets = [(path, slot, cfg) for path, slot, cfg in named_components(context.recipe) if slot != "task"]
        if not targets and self.config.require_components:
            raise MemoZooError("task smoke: the recipe names no component to build "
                               "(set task.require_components=false to allow that)")
        table: dict[str, list] = {"field": [], "slot": [], "kind": [], "plugin": [], "class": [],
                                  "parameters": [], "build_seconds": []}
        for path, slot, config in context.progress(targets, desc="building components", unit="component"):
            start = time.perf_counter()
            component = context.build(slot, config, **SLOT_BY_NAME[slot].smoke_build_args)
            seconds = time.perf_counter() - start
            params = _parameter_count(component)
            table["field"].append(path)
            table["slot"].append(slot)
            table["kind"].append(config.kind)
            table["plugin"].append(context.registry.get(slot, config.kind).plugin)
            table["class"].append(type(component).__name__)
            table["parameters"].append(params)
            table["build_seconds"].append(round(seconds, 6))
            context.run.log_metrics({f"parameters.{path}": params})
        context.run.log_metrics({"components_built": len(targets), "parameters_total": sum(table["parameters"])})
        context.run.log_table(table, "components.json")


def build(config: SmokeConfig) -> SmokeTask:
    return SmokeTask(config)
