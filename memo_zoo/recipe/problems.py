"""Turning pydantic's validation errors into one line per field a user can act on.

Each problem is ``(dotted.path, message)``: the path is the one the user writes in YAML and in
``key=value`` overrides (pydantic's union tags are dropped from it), and the message says what
was expected: for ``kind`` the registered kinds, for a typo the field it probably meant.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from memo_zoo.plugin.manager import Registry
from memo_zoo.recipe.schema import SLOT_FIELDS


def user_path(document: Any, loc: tuple[Any, ...]) -> list[Any]:
    """The loc with the union tags pydantic inserts removed."""
    path: list[Any] = []
    node = document
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # pydantic inserts the discriminator's value into locs of union members
        path.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return path


def _slot_at(path: list[Any]) -> str | None:
    dotted = ".".join(str(p) for p in path if not isinstance(p, int))
    entry = SLOT_FIELDS.get(dotted)
    return entry[0] if entry else None


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation can hold (through Optional, list, Annotated, Union)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict):
        return [m for arg in typing.get_args(annotation) for m in _unwrap(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _model_at(recipe_model: type[BaseModel], document: Any, path: list[Any]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` (None if it is not a model)."""
    model: type[BaseModel] | None = recipe_model
    node = document
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if model is None or part not in model.model_fields:
            return None
        candidates = _unwrap(model.model_fields[part].annotation)
        node = node.get(part) if isinstance(node, dict) else None
        kind = node.get("kind") if isinstance(node, dict) else None
        model = None
        for candidate in candidates:
            field = candidate.model_fields.get("kind")
            if field is None or kind in typing.get_args(field.annotation):
                model = candidate
                break
    return model


def describe(error: ValidationError, document: Any, recipe_model: type[BaseModel],
             registry: Registry) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for item in error.errors():
        path = user_path(document, item["loc"])
        kind_error = item["type"] in ("union_tag_invalid", "union_tag_not_found", "none_required")
        slot = _slot_at(path)
        if kind_error and slot is not None:
            kinds = ", ".join(registry.kinds(slot)) or "(none registered: install a plugin for it)"
            given = item.get("input")
            asked = given.get("kind") if isinstance(given, dict) else None
            # A kind missing because its plugin is disabled or broken must say so, not look like a typo.
            why = registry.why_missing(slot, asked) if isinstance(asked, str) else None
            because = f"; {why}" if why else ""
            if item["type"] == "union_tag_invalid":
                message = (f"unknown kind {item['ctx']['tag']!r}{because}; "
                           f"registered kinds in slot '{slot}': {kinds}")
            elif item["type"] == "none_required":
                named = f"unknown kind {asked!r}{because}; " if asked is not None else ""
                message = f"{named}no component is registered in slot '{slot}'"
            else:
                message = f"needs a 'kind'; registered kinds in slot '{slot}': {kinds}"
            problems.append((".".join(map(str, path + ["kind"] if item["type"] != "none_required" else path)),
                             message + f" (see `memo-zoo ls {slot}`)"))
            continue
        if item["type"] == "extra_forbidden":
            owner = _model_at(recipe_model, document, path[:-1])
            allowed = sorted(name for name in (owner.model_fields if owner else {}) if name != "include")
            close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listing = f" (allowed: {', '.join(allowed)})" if allowed else ""
            problems.append((".".join(map(str, path)), f"unknown field{hint}{listing}"))
            continue
        got = item.get("input")
        shown = f" (got {got!r:.60})" if not isinstance(got, (dict, list)) and "input" in item else ""
        message = item["msg"].removeprefix("Value error, ")
        problems.append((".".join(map(str, path)), message + shown))
    return problems


def _number_without_bool(annotation: Any) -> bool:
    """Whether a field of this type takes a number but not a boolean (``int``, ``float``,
    ``Optional[int]``, ``Annotated[int, Field(ge=0)]``; not ``bool``, ``Union[int, bool]``, ``Any``)."""
    flat = _flatten(annotation)
    if any(t is bool or t is Any for t in flat):
        return False
    return any(isinstance(t, type) and issubclass(t, (int, float)) for t in flat)


def _flatten(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _flatten(arg)]
    return [annotation]


def _member_for(candidates: list[type[BaseModel]], value: dict[str, Any]) -> type[BaseModel] | None:
    """The model of a (discriminated) union that ``value`` selects by its ``kind``."""
    for candidate in candidates:
        field = candidate.model_fields.get("kind")
        if field is None or value.get("kind") in typing.get_args(field.annotation):
            return candidate
    return None


def bool_number_problems(document: Any, model: type[BaseModel]) -> list[tuple[str, str]]:
    """``(dotted.path, message)`` for every boolean given where the schema wants a number.

    pydantic's lax mode turns ``true`` into 1 for ``int`` and ``float`` fields, so ``steps: true``
    would run with one step. Strict mode would refuse it, but also the conversions recipes rely
    on (``1e-5`` read as a YAML string, lists for tuples, strings for paths), so booleans alone
    are looked for, walking the document along the model's fields: component configs (plugins),
    nested option models and lists of components alike.
    """
    problems: list[tuple[str, str]] = []
    _walk_model(document, model, [], problems)
    return problems


def _walk_model(value: Any, model: type[BaseModel], path: list[Any], problems: list[tuple[str, str]]) -> None:
    if not isinstance(value, dict):
        return
    for name, item in value.items():
        field = model.model_fields.get(name) if isinstance(name, str) else None
        if field is not None:  # an unknown field is reported by pydantic (extra="forbid")
            _walk_value(item, field.annotation, [*path, name], problems)


def _walk_value(value: Any, annotation: Any, path: list[Any], problems: list[tuple[str, str]]) -> None:
    if isinstance(value, bool):
        if _number_without_bool(annotation):
            problems.append((".".join(map(str, path)),
                             f"expects a number, got the boolean {str(value).lower()} "
                             "(booleans are not read as 0/1)"))
        return
    if isinstance(value, dict):
        models = [t for t in _flatten(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
        model = _member_for(models, value) if models else None
        if model is not None:
            _walk_model(value, model, path, problems)
            return
        for arg in _flatten(annotation):
            if typing.get_origin(arg) is dict and len(typing.get_args(arg)) == 2:
                for key, item in value.items():
                    _walk_value(item, typing.get_args(arg)[1], [*path, key], problems)
        return
    if isinstance(value, list):
        for arg in _flatten(annotation):
            origin, args = typing.get_origin(arg), typing.get_args(arg)
            if origin in (list, set, frozenset) and args:
                for index, item in enumerate(value):
                    _walk_value(item, args[0], [*path, index], problems)
            elif origin is tuple and args:
                repeat = len(args) == 2 and args[1] is Ellipsis
                for index, item in enumerate(value):
                    if repeat or index < len(args):
                        _walk_value(item, args[0] if repeat else args[index], [*path, index], problems)
