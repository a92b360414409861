"""Recipe fields that moved: older recipes keep working, and the recipe that runs names one home.

A field with two homes (the sampler's step count was both ``scheduler.steps`` and the task's
``generation.steps`` / ``steps``, and the task's value won without a word while MLflow logged the
scheduler's) is migrated to its one home while a recipe is read: in the file (after its
includes are merged), in each profile, in each ``sweep`` variant and in the command-line
overrides. Each layer is migrated on its own, so a later layer still wins over an earlier one
whichever name either used; within one layer the old name wins over the new, as it always did.
Every move prints a ``FutureWarning`` naming the source, the old key and the new one.

The validated recipe (what ``memo-zoo validate`` prints and MLflow logs as parameters) therefore
holds the count that runs.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MovedField:
    """``old`` (a dotted key, valid while the task's kind is ``task_kind``) now lives at ``new``."""

    task_kind: str
    old: str
    new: str


MOVED: tuple[MovedField, ...] = (
    MovedField("experiment", "task.generation.steps", "scheduler.steps"),
    MovedField("generate", "task.steps", "scheduler.steps"),
)


def task_kind(document: dict[str, Any]) -> str | None:
    task = document.get("task")
    if isinstance(task, dict):
        return task.get("kind")
    return task if isinstance(task, str) else None


def _pop(document: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    *parents, leaf = dotted.split(".")
    node: Any = document
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        return False, None
    return True, node.pop(leaf)


def _set(document: dict[str, Any], dotted: str, value: Any) -> bool:
    """Set a nested key; False (nothing changed) when a parent exists but is not a mapping, which
    the schema then reports at its own path."""
    *parents, leaf = dotted.split(".")
    node = document
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return False
        node = child
    node[leaf] = value
    return True


def _warn(source: str, where: str, move: MovedField, replaced: Any = None) -> None:
    extra = f" (it replaces {move.new}: {replaced!r} given in the same place)" if replaced is not None else ""
    warnings.warn(f"{source}: {where}`{move.old}` has moved to `{move.new}`{extra}; the recipe that runs says "
                  f"`{move.new}`. Write `{move.new}` to silence this warning.", FutureWarning, stacklevel=3)


def migrate_document(document: dict[str, Any], source: str, where: str = "") -> dict[str, Any]:
    """A copy of a nested recipe document with every moved field at its new home."""
    kind = task_kind(document)
    moves = [move for move in MOVED if move.task_kind == kind]
    if not moves:
        return document
    document = copy.deepcopy(document)
    for move in moves:
        found, value = _pop(document, move.old)
        if not found:
            continue
        had, replaced = _pop(copy.deepcopy(document), move.new)
        if _set(document, move.new, value):
            _warn(source, where, move, replaced if had and replaced != value else None)
        else:
            _set(document, move.old, value)  # leave it for the schema to report where it is
    return document


def migrate_overrides(pairs: list[tuple[str, Any]], kind: str | None, source: str,
                      where: str) -> list[tuple[str, Any]]:
    """Dotted ``(key, value)`` overrides (a profile, a sweep variant, the command line) with moved
    keys renamed; ``kind`` is the task kind the overrides apply to (an override of ``task.kind``
    in the same list counts)."""
    for key, value in pairs:
        if key == "task.kind" and isinstance(value, str):
            kind = value
        elif key == "task" and isinstance(value, dict) and isinstance(value.get("kind"), str):
            kind = value["kind"]
    moves = [m for m in MOVED if m.task_kind == kind]
    kept: list[tuple[str, Any]] = []
    moved: list[tuple[str, Any]] = []  # applied after the rest of the layer: there the old name wins
    for key, value in pairs:
        for move in moves:
            if key == move.old:
                _warn(source, where, move)
                moved.append((move.new, value))
                break
            if isinstance(value, dict) and move.old.startswith(key + "."):
                # e.g. `task.generation={steps: 4, cfg: ...}`: the moved part leaves the mapping.
                value = copy.deepcopy(value)
                found, inner = _pop(value, move.old[len(key) + 1:])
                if found:
                    _warn(source, where, move)
                    moved.append((move.new, inner))
        else:
            kept.append((key, value))
    return kept + moved
