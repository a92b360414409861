"""The hooks a memo-zoo plugin may implement: one per slot, plus one that adds CLI commands.

A plugin is any module or object reachable through the ``memo_zoo`` entry-point group that
defines functions with these names decorated by ``memo_zoo.plugin.hookimpl``. Every hook takes
no arguments and returns a list of typed records (``ComponentSpec`` or ``CommandSpec``); the
registry checks them and names the plugin when one is malformed or clashes with another.

The slot hooks (``temporal_components``, ..., ``task_components``) are generated from the slot
table (``memo_zoo.slots``), each documented with its slot's recipe field, factory and protocol;
they are module attributes like ``cli_commands``, and this module is what pluggy is given.
"""

from __future__ import annotations

import inspect
from typing import Callable

import pluggy

from memo_zoo.plugin.types import CommandSpec, ComponentSpec
from memo_zoo.slots import SLOTS, Slot

PROJECT_NAME = "memo_zoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def cli_commands() -> list[CommandSpec]:
    """Subcommands added to the ``memo-zoo`` command line (e.g. ``memo-zoo generate``)."""


def hook_doc(slot: Slot) -> str:
    """The docstring of ``slot``'s hook: its summary, recipe field, factory and protocol."""
    protocol = slot.protocol
    field = f"``{slot.recipe_path}``" + (", a list of components" if slot.is_list else "")
    return "\n\n".join([
        f"Components of slot ``{slot.name}``: {slot.summary}.",
        f"Recipe field: {field}. Factory: ``{slot.factory_signature}`` returns a "
        f"``{protocol.__module__}.{protocol.__qualname__}``:",
        inspect.cleandoc(protocol.__doc__ or ""),
    ])


def _component_hook(slot: Slot) -> Callable[[], list[ComponentSpec]]:
    def hook() -> list[ComponentSpec]:
        """Replaced by ``hook_doc(slot)``."""

    hook.__name__ = hook.__qualname__ = slot.hook
    hook.__doc__ = hook_doc(slot)
    return hookspec(hook)


# Module attributes, as if each were written out with ``def``: pluggy reads this module's
# attributes (``add_hookspecs``), and plugins and docs refer to ``hookspecs.<hook name>``.
COMPONENT_HOOKS: dict[str, Callable[[], list[ComponentSpec]]] = {slot.hook: _component_hook(slot) for slot in SLOTS}
globals().update(COMPONENT_HOOKS)
