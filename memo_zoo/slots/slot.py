"""The record that declares a slot: everything memo-zoo derives from it in one place.

A slot's hook (``memo_zoo.plugin.hookspecs``), its field in the recipe (``memo_zoo.recipe.schema``),
its line in ``memo-zoo ls`` and its row in docs/architecture.md are all read from these records
(``memo_zoo.slots.table.SLOTS``); nothing else names a slot's place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Slot:
    """One swappable part of MEMO, filled by registered components.

    name:             the slot's name (``memo-zoo ls NAME``, ``Registry.build(NAME, ...)``).
    recipe_path:      where a recipe names its component(s): ``"task"``, ``"model.temporal"``; a
                      dotted path puts the field in that section (``model``, ``data``).
    description:      the recipe field's description (``memo-zoo schema``, editors).
    summary:          one line for ``memo-zoo ls`` and the slot table in the docs.
    protocol:         what the host calls on a built component; its docstring is the contract.
    build_args:       keyword arguments the host passes to a component's factory besides the
                      config (sizes that the host, not the recipe, decides).
    smoke_build_args: small values for ``build_args``, used by ``task: smoke`` and the contract kit.
    is_list:          the recipe field holds a list of components (pipeline stages, metrics).
    required:         a recipe must name one (only the task: what ``memo-zoo run`` does).
    """

    name: str
    recipe_path: str
    description: str
    summary: str
    protocol: type
    build_args: tuple[str, ...] = ()
    smoke_build_args: dict[str, Any] = field(default_factory=dict)
    is_list: bool = False
    required: bool = False

    @property
    def hook(self) -> str:
        """The plugin hook that registers this slot's components (third-party plugins implement it)."""
        return f"{self.name}_components"

    @property
    def factory_signature(self) -> str:
        """How the host calls a component's factory, e.g. ``factory(config, channels)``."""
        return f"factory({', '.join(('config',) + self.build_args)})"
