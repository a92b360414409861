"""``memo-zoo run``: a validated recipe -> MLflow run(s) -> the recipe's task.

A recipe without ``sweep:`` is one run; with ``sweep:`` it is a parent run and one nested run
per variant (architecture.md, "Tracking"); a task with a ``finish_sweep(context, children)``
method is then called once more on the parent run with the variants' run ids (the comparison).
A task whose config has ``seeds`` > 1 (the experiment task's) is run once per seed for every variant
(``replicates``): one nested run each, named ``<variant>.seed<N>`` and tagged ``memo_zoo.seed``, on
the variant's recipe with ``seed`` set to the recipe's seed, seed + 1, ...; a recipe without a sweep
then becomes a parent with one nested run per seed. With one seed nothing of this appears.
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
from memo_zoo.recipe.loader import (LoadedRecipe, dump_recipe, validate_document, validate_variants,
                                    variant_documents)
from memo_zoo.seeding import seed_everything
from memo_zoo.settings import get_settings
from memo_zoo.tracking.tracker import TrackedRun, Tracker
from memo_zoo.tracking.uri import resolve_tracking_uri

T = TypeVar("T")

# The tag of a replicate's seed; memo_zoo.eval.report groups the nested runs by variant with it.
SEED_TAG = "memo_zoo.seed"


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


@dataclass(frozen=True)
class Replicate:
    """One nested run: a sweep variant (or the whole recipe) at one of its seeds."""

    run_name: str
    variant: str
    seed: int | None  # None: the recipe's own seed, no replicates (the run is named as its variant)
    overrides: dict[str, Any]
    recipe: BaseModel


def seed_count(recipe: BaseModel) -> int:
    """How many seeds the recipe's task asks for: its config's ``seeds`` (1 when it has none)."""
    seeds = getattr(recipe.task, "seeds", 1)
    return seeds if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 1 else 1


def replicates(variants: list[tuple[str, dict[str, Any], dict[str, Any], BaseModel]], registry: Registry,
               source: str) -> list[Replicate]:
    """The nested runs of (name, overrides, document, recipe) variants, seed by seed.

    A variant with one seed is one run, as it always was. With ``seeds`` = n its runs use the
    recipe's ``seed`` s, s + 1, ..., s + n - 1, each set in the variant's document (so the seed that
    trains and generates has one home, ``seed``, in every run) and validated like it; the first is
    the variant itself, so its training keys are those of a one-seed run and its work is reused.
    The runs go round by round (every variant's first seed, then every variant's second, ...): an
    interrupted sweep has a whole comparison at its first seeds before it has a spread.
    """
    rounds: list[tuple[int, int, Replicate]] = []
    for order, (name, overrides, document, recipe) in enumerate(variants):
        count = seed_count(recipe)
        if count == 1:
            rounds.append((0, order, Replicate(name, name, None, overrides, recipe)))
            continue
        for index in range(count):
            seed = recipe.seed + index
            seeded = recipe if index == 0 else validate_document({**document, "seed": seed}, registry, source)
            rounds.append((index, order, Replicate(f"{name}.seed{seed}", name, seed,
                                                   {**overrides, "seed": seed}, seeded)))
    return [replicate for _, _, replicate in sorted(rounds, key=lambda item: item[:2])]


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
    if not resolved and seed_count(recipe) == 1:
        with tracker.run(recipe.name, tags={"memo_zoo.recipe": loaded.source}) as run:
            if on_start:
                on_start(run.id)
            _execute(recipe, registry, run, workdir, None)
        return RunOutcome(run.id, {}, uri)

    plan = replicates([(v.name, v.overrides, v.document, r) for v, r in resolved]
                      or [(recipe.name, {}, loaded.document, recipe)], registry, loaded.source)
    children: dict[str, str] = {}
    with tracker.run(recipe.name, tags={"memo_zoo.recipe": loaded.source, "memo_zoo.sweep": "parent"}) as parent:
        if on_start:
            on_start(parent.id)
        parent.log_params({k: v for k, v in recipe.model_dump(mode="json").items() if k not in ("sweep", "profiles")})
        parent.log_dict(recipe.model_dump(mode="json")["sweep"], "sweep.json")
        parent.log_text(dump_recipe(recipe), "recipe.yaml")
        unit = "variant" if all(r.seed is None for r in plan) else "run"
        for replicate in progress(plan, desc=f"sweep {recipe.name}", unit=unit):
            tags = {"memo_zoo.variant": replicate.variant, "memo_zoo.sweep": "variant"}
            if replicate.seed is not None:
                tags[SEED_TAG] = str(replicate.seed)
            with tracker.run(replicate.run_name, parent=parent, tags=tags) as child:
                child.log_dict(replicate.overrides, "variant_overrides.json")
                _execute(replicate.recipe, registry, child, workdir, replicate.variant)
            children[replicate.run_name] = child.id
        # A task that compares its variants (the experiment task's report) does so on the parent,
        # once every variant has finished.
        finish = getattr(registry.build("task", recipe.task), "finish_sweep", None)
        if finish is not None:
            finish(RunContext(recipe, registry, parent, workdir), children)
    return RunOutcome(parent.id, children, uri)
