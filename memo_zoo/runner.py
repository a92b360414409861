"""``memo-zoo run``: a validated recipe -> MLflow run(s) -> the recipe's task.

A recipe without ``sweep:`` is one run; with ``sweep:`` it is a parent run and one nested run
per variant (architecture.md, "Tracking"); a task with a ``finish_sweep(context, children)``
method is then called once more on the parent run with the variants' run ids (the comparison).
Everything is validated before the first run is created, the tasks' own ``preflight`` checks
included, so a bad recipe or a resume with nothing to resume leaves nothing in the tracking store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from pydantic import BaseModel

from memo_zoo.errors import RecipeError
from memo_zoo.plugin.manager import Registry
from memo_zoo.progress import progress
from memo_zoo.recipe.loader import LoadedRecipe, dump_recipe, validate_variants, variant_documents
from memo_zoo.seeding import seed_everything
from memo_zoo.settings import get_settings
from memo_zoo.tracking.tracker import TrackedRun, Tracker
from memo_zoo.tracking.uri import resolve_tracking_uri

T = TypeVar("T")


@dataclass
class RunContext:
    """What a task gets: its recipe, the registry to build components, and its MLflow run."""

    recipe: BaseModel
    registry: Registry
    run: TrackedRun
    workdir: Path
    variant: str | None = None

    def build(self, slot: str, config: BaseModel, **build_args: Any) -> Any:
        return self.registry.build(slot, config, **build_args)

    def progress(self, items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
        return progress(items, desc, total, unit)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    child_run_ids: dict[str, str]
    tracking_uri: str


def _execute(recipe: BaseModel, registry: Registry, run: TrackedRun, workdir: Path, variant: str | None) -> None:
    document = recipe.model_dump(mode="json")
    run.log_params({k: v for k, v in document.items() if k not in ("sweep", "profiles")})
    run.log_text(dump_recipe(recipe), "recipe.yaml")
    seed_everything(recipe.seed)
    task = registry.build("task", recipe.task)
    task.run(RunContext(recipe, registry, run, workdir, variant))


def _preflight(recipe: BaseModel, registry: Registry, workdir: Path, variant: str | None) -> None:
    """A task's own check that it can start at all (``preflight(context)``, optional; the train
    task's: a resume with nothing to resume). Called with no run, before any run is created."""
    check = getattr(registry.build("task", recipe.task), "preflight", None)
    if check is not None:
        check(RunContext(recipe, registry, None, workdir, variant))


def run_recipe(loaded: LoadedRecipe, registry: Registry, only_variant: str | None = None,
               workdir: Path | None = None, on_start: Callable[[str], None] | None = None) -> RunOutcome:
    workdir = workdir or Path.cwd()
    recipe = loaded.recipe
    variants = variant_documents(loaded.document, loaded.source)
    if only_variant is not None:
        variants = [v for v in variants if v.name == only_variant]
        if not variants:
            names = ", ".join(recipe.sweep) or "(the recipe has no sweep)"
            raise RecipeError(loaded.source, [("sweep", f"no variant {only_variant!r}; variants: {names}")])
    resolved = validate_variants(variants, registry, loaded.source)
    for name, checked in [(v.name, r) for v, r in resolved] or [(None, recipe)]:
        _preflight(checked, registry, workdir, name)

    uri = resolve_tracking_uri(recipe.tracking.uri, get_settings().tracking_uri, workdir)
    tracker = Tracker(uri, recipe.tracking.experiment, recipe.tracking.artifact_dir, workdir)
    if not resolved:
        with tracker.run(recipe.name, tags={"memo_zoo.recipe": loaded.source}) as run:
            if on_start:
                on_start(run.id)
            _execute(recipe, registry, run, workdir, None)
        return RunOutcome(run.id, {}, uri)

    children: dict[str, str] = {}
    with tracker.run(recipe.name, tags={"memo_zoo.recipe": loaded.source, "memo_zoo.sweep": "parent"}) as parent:
        if on_start:
            on_start(parent.id)
        parent.log_params({k: v for k, v in recipe.model_dump(mode="json").items() if k not in ("sweep", "profiles")})
        parent.log_dict(recipe.model_dump(mode="json")["sweep"], "sweep.json")
        parent.log_text(dump_recipe(recipe), "recipe.yaml")
        for variant, variant_recipe in progress(resolved, desc=f"sweep {recipe.name}", unit="variant"):
            tags = {"memo_zoo.variant": variant.name, "memo_zoo.sweep": "variant"}
            with tracker.run(variant.name, parent=parent, tags=tags) as child:
                child.log_dict(variant.overrides, "variant_overrides.json")
                _execute(variant_recipe, registry, child, workdir, variant.name)
            children[variant.name] = child.id
        # A task that compares its variants (the experiment task's report) does so on the parent,
        # once every variant has finished.
        finish = getattr(registry.build("task", recipe.task), "finish_sweep", None)
        if finish is not None:
            finish(RunContext(recipe, registry, parent, workdir), children)
    return RunOutcome(parent.id, children, uri)
