"""Reading recipes: YAML file -> ``include:`` bases merged -> overrides -> validated model.

Every failure is a ``RecipeError`` naming the file and the dotted path, so the CLI can print it
on one screen and exit with code 2. Nothing here writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ValidationError

from memo_zoo.errors import RecipeError
from memo_zoo.plugin.manager import Registry
from memo_zoo.recipe.merge import OverrideError, apply_overrides, deep_merge, parse_override
from memo_zoo.recipe.moved import migrate_document, migrate_overrides, task_kind
from memo_zoo.recipe.problems import bool_number_problems, describe
from memo_zoo.recipe.schema import recipe_model
from memo_zoo.recipe.yaml_text import DuplicateKeyError, load_yaml

MAX_INCLUDE_DEPTH = 16


def read_yaml(path: Path) -> dict[str, Any]:
    """One YAML document that must be a mapping."""
    if not path.is_file():
        raise RecipeError(str(path), [], headline="recipe file not found" if not path.exists()
                          else "recipe path is not a file")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        headline = "recipe has a duplicate key" if isinstance(error, DuplicateKeyError) else "recipe is not valid YAML"
        raise RecipeError(str(path), [(where, problem)], headline=headline) from None
    except UnicodeDecodeError as error:
        raise RecipeError(str(path), [("", str(error))], headline="recipe is not UTF-8 text") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(str(path), [("", f"the top level must be a mapping, got {type(data).__name__}")])
    return data


def resolve_includes(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The document at ``path`` merged over its ``include:`` bases (in order, later wins)."""
    path = path.resolve()
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise RecipeError(str(_chain[0]), [("include", f"include cycle: {cycle}")])
    if len(_chain) >= MAX_INCLUDE_DEPTH:
        raise RecipeError(str(_chain[0]), [("include", f"includes nested deeper than {MAX_INCLUDE_DEPTH}")])
    document = read_yaml(path)
    includes = document.pop("include", None)
    if includes is None:
        return document
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise RecipeError(str(path), [("include", "must be a file name or a list of file names")])
    merged: dict[str, Any] = {}
    for include in includes:
        base_path = (path.parent / include)
        if not base_path.is_file():
            raise RecipeError(str(path), [("include", f"included file not found: {base_path}")])
        merged = deep_merge(merged, resolve_includes(base_path, (*_chain, path)))
    return deep_merge(merged, document)


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe and the plain document it came from (after includes and overrides)."""

    source: str
    recipe: BaseModel
    document: dict[str, Any]


def validate_document(document: dict[str, Any], registry: Registry, source: str,
                      headline: str = "invalid recipe") -> BaseModel:
    model = recipe_model(registry)
    # pydantic's lax mode reads `true` as 1 for a number field; a recipe that says `steps: true`
    # is a mistake, so booleans are refused there before pydantic converts them.
    problems = bool_number_problems(document, model)
    try:
        recipe = model.model_validate(document)
    except ValidationError as error:
        seen = {path for path, _ in problems}
        problems += [p for p in describe(error, document, model, registry) if p[0] not in seen]
    if problems:
        raise RecipeError(source, problems, headline=headline)
    return recipe


def validate_variants(variants: list[Variant], registry: Registry, source: str) -> list[tuple[Variant, BaseModel]]:
    """Every variant validated, with one ``RecipeError`` listing the problems of all bad variants
    (not only the first), so one edit-and-retry fixes a whole sweep."""
    resolved: list[tuple[Variant, BaseModel]] = []
    failures: list[tuple[str, RecipeError]] = []
    for variant in variants:
        try:
            resolved.append((variant, validate_document(variant.document, registry, source)))
        except RecipeError as error:
            failures.append((variant.name, error))
    _raise_all(failures, source, "in sweep variant", "variant")
    return resolved


def _raise_all(failures: list[tuple[str, RecipeError]], source: str, headline: str, label: str) -> None:
    """One ``RecipeError`` for the failures of several named documents (variants, profiles).

    With one failure its paths stay as they are (``scheduler.steps``); with several each path is
    prefixed with the name it belongs to (``variant n2: scheduler.steps``), as two variants may
    break the same field.
    """
    if len(failures) == 1:
        name, error = failures[0]
        raise RecipeError(source, error.problems, headline=f"invalid recipe {headline} {name!r}")
    if failures:
        names = ", ".join(repr(name) for name, _ in failures)
        problems = [(f"{label} {name}: {path}" if path else f"{label} {name}", message)
                    for name, error in failures for path, message in error.problems]
        raise RecipeError(source, problems, headline=f"invalid recipe {headline}s {names}")


def apply_profile(document: dict[str, Any], profile: str, source: str) -> dict[str, Any]:
    """The document with its ``profiles[profile]`` overrides applied (``profiles`` itself kept)."""
    profiles = document.get("profiles") or {}
    if not isinstance(profiles, dict) or profile not in profiles:
        names = ", ".join(profiles) if isinstance(profiles, dict) and profiles else "(the recipe has no profiles)"
        raise RecipeError(source, [("profiles", f"no profile {profile!r}; profiles: {names}")],
                          headline="unknown profile")
    overrides = profiles[profile]
    if not isinstance(overrides, dict):
        raise RecipeError(source, [(f"profiles.{profile}", "a profile is a mapping of dotted.key: value")])
    try:
        pairs = migrate_overrides([(str(k), v) for k, v in overrides.items()], task_kind(document), source,
                                  f"profile {profile}: ")
        return apply_overrides(document, pairs)
    except OverrideError as error:
        raise RecipeError(source, [(f"profiles.{profile}", str(error))], headline="bad profile") from None


def load_recipe(path: str | Path, registry: Registry, overrides: Iterable[str] = (),
                profile: str | None = None) -> LoadedRecipe:
    """Read, merge, apply the profile and overrides, and validate a recipe and every variant of its
    ``sweep:``. Every profile is validated too, so a profile broken by an edit fails ``validate``."""
    path = Path(path)
    document = migrate_document(resolve_includes(path), str(path))
    if profile is None:
        failures: list[tuple[str, RecipeError]] = []
        for name in (document.get("profiles") or {}) if isinstance(document.get("profiles"), dict) else ():
            try:
                validate_document(apply_profile(document, name, str(path)), registry, str(path))
            except RecipeError as error:
                failures.append((str(name), error))
        _raise_all(failures, str(path), "with profile", "profile")
    else:
        document = apply_profile(document, profile, str(path))
    try:
        parsed = [parse_override(text) for text in overrides]
        document = apply_overrides(document, migrate_overrides(parsed, task_kind(document), str(path),
                                                               "command line: "))
    except OverrideError as error:
        raise RecipeError(str(path), [("command line", str(error))], headline="bad override") from None
    recipe = validate_document(document, registry, str(path))
    validate_variants(variant_documents(document, str(path)), registry, str(path))
    return LoadedRecipe(str(path), recipe, document)


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, Any]
    document: dict[str, Any]


def variant_documents(document: dict[str, Any], source: str) -> list[Variant]:
    """One document per ``sweep:`` variant: the recipe without ``sweep``, overrides applied."""
    sweep = document.get("sweep") or {}
    if not isinstance(sweep, dict):
        return []  # schema validation reports the wrong type
    base = {key: value for key, value in document.items() if key != "sweep"}
    variants = []
    problems: list[tuple[str, str]] = []  # every bad variant, not only the first
    for name, overrides in sweep.items():
        if not isinstance(overrides, dict):
            problems.append((f"sweep.{name}", "a variant is a mapping of dotted.key: value"))
            continue
        try:
            pairs = migrate_overrides([(str(k), v) for k, v in overrides.items()], task_kind(base), source,
                                      f"sweep.{name}: ")
            variant_doc = apply_overrides(base, pairs)
        except OverrideError as error:
            problems.append((f"sweep.{name}", str(error)))
            continue
        variants.append(Variant(str(name), dict(overrides), variant_doc))
    if problems:
        raise RecipeError(source, problems, headline="bad sweep variant" + ("s" if len(problems) > 1 else ""))
    return variants


def dump_recipe(recipe: BaseModel) -> str:
    """The resolved recipe as YAML: every default made explicit, readable back unchanged."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
