"""Loading plugins from the ``memo_zoo`` entry-point group and building the component registry.

Rules (docs/writing-a-plugin.md):
- built-ins and third-party plugins load the same way, through entry points;
- a plugin whose import (or hook) raises is skipped with a warning naming it and the error;
- ``MEMO_ZOO_DISABLE_PLUGINS=a,b`` skips plugins by entry-point name;
- two components with one name in one slot is an error naming both plugins.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Iterable

import pluggy
from pydantic import BaseModel

from memo_zoo.errors import PluginError
from memo_zoo.plugin import hookspecs
from memo_zoo.plugin.slots import SLOT_BY_NAME, SLOTS
from memo_zoo.plugin.types import CommandSpec, ComponentSpec

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded and was skipped."""


@dataclass(frozen=True)
class Registered:
    """A component together with the plugin that gave it."""

    spec: ComponentSpec
    plugin: str
    distribution: str | None


@dataclass
class Registry:
    """Every component of every slot, and every CLI command plugins add."""

    components: dict[str, dict[str, Registered]] = field(default_factory=dict)
    commands: dict[str, tuple[CommandSpec, str]] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    recipe_model: Any = field(default=None, repr=False, compare=False)

    def kinds(self, slot: str) -> list[str]:
        return sorted(self.components.get(slot, {}))

    def get(self, slot: str, kind: str) -> Registered:
        if slot not in SLOT_BY_NAME:
            raise PluginError(f"unknown slot {slot!r}; slots: {', '.join(s.name for s in SLOTS)}")
        try:
            return self.components[slot][kind]
        except KeyError:
            known = ", ".join(self.kinds(slot)) or "(none registered)"
            raise PluginError(f"no component {kind!r} in slot {slot!r}; registered kinds: {known}") from None

    def build(self, slot: str, config: BaseModel, **build_args: Any) -> Any:
        """Build the component that ``config`` (a validated recipe slot) selects."""
        kind = getattr(config, "kind", None)
        if kind is None:
            raise PluginError(f"config for slot {slot!r} has no 'kind' ({type(config).__name__})")
        return self.get(slot, kind).spec.factory(config, **build_args)


def _plugin_entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=hookspecs.PROJECT_NAME), key=lambda ep: ep.name)


def _distribution_name(ep: EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else None


def _check_records(records: Any, kind: type, plugin: str, hook: str) -> list[Any]:
    if records is None:
        return []
    if not isinstance(records, (list, tuple)):
        raise PluginError(f"plugin {plugin!r}: hook {hook} must return a list of {kind.__name__}, "
                          f"got {type(records).__name__}")
    for record in records:
        if not isinstance(record, kind):
            raise PluginError(f"plugin {plugin!r}: hook {hook} returned {type(record).__name__} "
                              f"({record!r:.80}); expected {kind.__name__}")
    return list(records)


def _check_component(spec: ComponentSpec, plugin: str, slot: str) -> None:
    where = f"plugin {plugin!r}, slot {slot!r}, component {spec.name!r}"
    if not isinstance(spec.name, str) or not _NAME.match(spec.name):
        raise PluginError(f"{where}: name must match {_NAME.pattern}")
    if not (isinstance(spec.config, type) and issubclass(spec.config, BaseModel)):
        raise PluginError(f"{where}: config must be a pydantic BaseModel subclass, got {spec.config!r}")
    if "kind" in spec.config.model_fields:
        raise PluginError(f"{where}: config must not declare a 'kind' field; memo-zoo adds it")
    if spec.config.model_config.get("extra") != "forbid":
        raise PluginError(f"{where}: config needs model_config = ConfigDict(extra='forbid') "
                          "so that typos in recipes are caught")
    if not callable(spec.factory):
        raise PluginError(f"{where}: factory must be callable")


def new_plugin_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def load_registry(disabled: Iterable[str] | None = None, extra_plugins: Iterable[tuple[str, object]] = ()) -> Registry:
    """Load every plugin of the ``memo_zoo`` entry-point group and collect their components.

    ``disabled`` defaults to ``MEMO_ZOO_DISABLE_PLUGINS``; ``extra_plugins`` are
    ``(name, module_or_object)`` pairs registered after the entry points (for tests and
    embedding applications).
    """
    if disabled is None:
        from memo_zoo.settings import get_settings

        disabled = get_settings().disabled_plugins
    disabled = frozenset(disabled)
    manager = new_plugin_manager()
    registry = Registry()
    distributions: dict[str, str | None] = {}

    for ep in _plugin_entry_points():
        if ep.name in disabled:
            registry.skipped[ep.name] = "disabled by MEMO_ZOO_DISABLE_PLUGINS"
            continue
        if manager.has_plugin(ep.name):
            continue  # the same distribution seen twice on sys.path
        try:
            plugin = ep.load()
            manager.register(plugin, name=ep.name)
        except Exception as error:  # a broken plugin must not take the others down
            registry.skipped[ep.name] = f"{type(error).__name__}: {error}"
            warnings.warn(f"memo-zoo plugin {ep.name!r} ({ep.value}) failed to load and was skipped: "
                          f"{type(error).__name__}: {error}", PluginLoadWarning, stacklevel=2)
            continue
        distributions[ep.name] = _distribution_name(ep)
    for name, plugin in extra_plugins:
        manager.register(plugin, name=name)
        distributions[name] = None

    for slot in SLOTS:
        registry.components[slot.name] = {}
        for impl in getattr(manager.hook, slot.hook).get_hookimpls():
            for spec in _call_hook(impl, slot.hook, ComponentSpec, registry):
                _check_component(spec, impl.plugin_name, slot.name)
                if spec.name in registry.components[slot.name]:
                    first = registry.components[slot.name][spec.name].plugin
                    raise PluginError(f"component name {spec.name!r} in slot {slot.name!r} is given by two "
                                      f"plugins: {first!r} and {impl.plugin_name!r}; disable one with "
                                      f"MEMO_ZOO_DISABLE_PLUGINS={impl.plugin_name}")
                registry.components[slot.name][spec.name] = Registered(
                    spec, impl.plugin_name, distributions.get(impl.plugin_name))
    for impl in manager.hook.cli_commands.get_hookimpls():
        for command in _call_hook(impl, "cli_commands", CommandSpec, registry):
            if command.name in registry.commands:
                first = registry.commands[command.name][1]
                raise PluginError(f"command {command.name!r} is given by two plugins: {first!r} "
                                  f"and {impl.plugin_name!r}")
            registry.commands[command.name] = (command, impl.plugin_name)
    registry.plugins = sorted(name for name, _ in manager.list_name_plugin() if name not in registry.skipped)
    return registry


def _call_hook(impl: pluggy.HookImpl, hook: str, kind: type, registry: Registry) -> list[Any]:
    try:
        records = impl.function()
    except Exception as error:
        registry.skipped[impl.plugin_name] = f"{hook} raised {type(error).__name__}: {error}"
        warnings.warn(f"memo-zoo plugin {impl.plugin_name!r}: hook {hook} raised and was skipped: "
                      f"{type(error).__name__}: {error}", PluginLoadWarning, stacklevel=3)
        return []
    return _check_records(records, kind, impl.plugin_name, hook)
