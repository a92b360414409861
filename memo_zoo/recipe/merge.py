"""Merging recipe documents: ``include:`` bases and dotted ``key=value`` overrides.

Both follow one rule for slots: a mapping that changes a slot's ``kind`` replaces the slot
instead of merging into it, because the old component's options mean nothing to the new one.
So ``model.temporal.kind=self_attention`` gives ``{kind: self_attention}`` (with that
component's defaults), and later overrides on the same command line can add options.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from memo_zoo.recipe.yaml_text import load_yaml


def deep_merge(base: Any, top: Any) -> Any:
    """``top`` merged over ``base``; lists and scalars in ``top`` replace those in ``base``."""
    if not (isinstance(base, dict) and isinstance(top, dict)):
        return copy.deepcopy(top)
    if "kind" in top and "kind" in base and top["kind"] != base["kind"]:
        return copy.deepcopy(top)
    merged = copy.deepcopy(base)
    for key, value in top.items():
        merged[key] = deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
    return merged


class OverrideError(ValueError):
    """An override that cannot be applied; the message names the override."""


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=1"`` -> ``("a.b", 1)``; the value is read as YAML (``[1, 2]``, ``{kind: x}``, ``null``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OverrideError(f"override {text!r} is not of the form dotted.key=value")
    if any(not part for part in key.split(".")):
        raise OverrideError(f"override {text!r}: empty part in key {key!r}")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise OverrideError(f"override {text!r}: value is not valid YAML ({error})") from None
    return key, value


def set_dotted(document: dict[str, Any], key: str, value: Any) -> None:
    """Set ``document[a][b][c] = value`` for ``key = "a.b.c"``; integer parts index lists."""
    parts = key.split(".")
    node: Any = document
    for depth, part in enumerate(parts[:-1]):
        here = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, here, key, allow_append=False)]
            continue
        if not isinstance(node, dict):
            raise OverrideError(f"override {key!r}: {'.'.join(parts[:depth]) or 'the recipe'} is not a mapping")
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        index = _list_index(node, last, key, key, allow_append=True)
        if index == len(node):
            node.append(copy.deepcopy(value))
        else:
            node[index] = copy.deepcopy(value)
        return
    if not isinstance(node, dict):
        raise OverrideError(f"override {key!r}: {'.'.join(parts[:-1])} is not a mapping")
    if last == "kind" and "kind" in node and node["kind"] != value:
        node.clear()
    node[last] = copy.deepcopy(value)


def _list_index(node: list[Any], part: str, here: str, key: str, allow_append: bool) -> int:
    if not part.isdigit():
        raise OverrideError(f"override {key!r}: {here} indexes a list, use a number")
    index = int(part)
    limit = len(node) + (1 if allow_append else 0)
    if index >= limit:
        raise OverrideError(f"override {key!r}: index {index} is past the end of a list of {len(node)}")
    return index


def apply_overrides(document: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of ``document`` with the overrides applied in order."""
    result = copy.deepcopy(document)
    for key, value in overrides:
        set_dotted(result, key, value)
    return result
