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
            if item["type"] == "union_tag_invalid":
                message = f"unknown kind {item['ctx']['tag']!r}; registered kinds in slot '{slot}': {kinds}"
            elif item["type"] == "none_required":
                given = item.get("input")
                named = f"unknown kind {given['kind']!r}; " if isinstance(given, dict) and "kind" in given else ""
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
