"""Hypothesis strategies that draw recipe documents from whatever the registry holds."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from hypothesis import strategies as st
from pydantic import BaseModel

from memo_zoo.plugin.manager import Registry
from memo_zoo.recipe.schema import SLOT_FIELDS


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        for name in ("ge", "gt", "le", "lt"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    return found


def value_for(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any] | None:
    """A strategy for values of a field; None when the type is not one we know how to draw."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is typing.Annotated:
        return value_for(args[0], metadata + [a for a in args[1:] if isinstance(a, annotated_types.BaseMetadata)])
    if origin in (typing.Union, types.UnionType):
        options = [value_for(a, metadata) for a in args if a is not type(None)]
        options = [o for o in options if o is not None]
        if type(None) in args:
            options.append(st.none())
        return st.one_of(options) if options else None
    b = _bounds(metadata)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low = b.get("ge", b.get("gt", -10**6 - 1) + 1)
        high = b.get("le", b.get("lt", 10**6 + 1) - 1)
        return st.integers(min_value=low, max_value=high)
    if annotation is float:
        return st.floats(min_value=b.get("ge", b.get("gt")), max_value=b.get("le", b.get("lt")),
                         exclude_min="gt" in b, exclude_max="lt" in b, allow_nan=False, allow_infinity=False,
                         width=64).filter(lambda x: abs(x) < 1e12)
    if annotation is Path:
        return st.from_regex(r"[a-z]{1,8}(/[a-z0-9_]{1,8}){0,2}", fullmatch=True)
    if annotation is str:
        return st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
    return None


@st.composite
def component(draw, config: type[BaseModel], kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": kind}
    for name, field in config.model_fields.items():
        strategy = value_for(field.annotation, list(field.metadata))
        if strategy is not None and (field.is_required() or draw(st.booleans())):
            doc[name] = draw(strategy)
    return doc


def slot_value(registry: Registry, slot: str) -> st.SearchStrategy[dict[str, Any]]:
    kinds = registry.components.get(slot, {})
    return st.one_of([component(entry.spec.config, kind) for kind, entry in sorted(kinds.items())])


@st.composite
def recipe_documents(draw, registry: Registry) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": draw(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)),
                           "seed": draw(st.integers(0, 2**31)),
                           "task": draw(slot_value(registry, "task"))}
    for path, (slot, is_list) in SLOT_FIELDS.items():
        if slot == "task" or not registry.kinds(slot) or not draw(st.booleans()):
            continue
        value: Any = draw(st.lists(slot_value(registry, slot), max_size=3)) if is_list else draw(slot_value(registry, slot))
        node = doc
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return doc


def option_leaves(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths to the options of components (leaf values of mappings that have a ``kind``)."""
    found = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if "kind" in doc and key != "kind" and not isinstance(value, (dict, list)):
                found.append(prefix + (key,))
            found += option_leaves(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += option_leaves(value, prefix + (index,))
    return found


def component_paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths to every component mapping (those with a ``kind``)."""
    found = [prefix] if isinstance(doc, dict) and "kind" in doc else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += component_paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += component_paths(value, prefix + (index,))
    return found
