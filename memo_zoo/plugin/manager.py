"""Loading plugins from the ``memo_zoo`` entry-point group and building the component registry.

Rules (docs/writing-a-plugin.md):
- built-ins and third-party plugins load the same way, through entry points;
- a plugin whose import (or hook) raises is skipped with a warning naming it and the error;
  ``sys.exit`` in a plugin's import counts as raising, so one plugin cannot end every command;
- ``MEMO_ZOO_DISABLE_PLUGINS=a,b`` skips plugins by entry-point name; a name no entry point has
  is warned about (a typo would otherwise leave the plugin enabled without a word);
- two components with one name in one slot is an error naming both plugins.

``load_registry(components=False)`` stops before the component hooks: plugins are imported and
their CLI commands collected, which is all ``memo-zoo --help`` needs; ``Registry.load_components``
calls the component hooks later. The built-in hooks import only their torch-free config modules and
name their factories by ``lazy`` reference (``memo_zoo.plugin.lazy``), so collecting the components
imports no component module either: the first build does (issue 17.8).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Iterable

import pluggy
from pydantic import BaseModel

from memo_zoo.errors import PluginError
from memo_zoo.plugin import hookspecs
from memo_zoo.plugin.lazy import LazyFactory
from memo_zoo.plugin.types import CommandSpec, ComponentSpec
from memo_zoo.slots import SLOT_BY_NAME, SLOTS

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded and was skipped."""


class UnknownPluginWarning(UserWarning):
    """``MEMO_ZOO_DISABLE_PLUGINS`` names a plugin that no entry point has."""


DISABLED_REASON = "disabled by MEMO_ZOO_DISABLE_PLUGINS"


@dataclass(frozen=True)
class Registered:
    """A component together with the plugin that gave it."""

    spec: ComponentSpec
    plugin: str
    distribution: str | None


@dataclass(frozen=True)
class ComponentFactory:
    """One chosen component of a slot, to be built as often as its host needs (the Diffusion Net
    builds a temporal and an audio module per site): ``factory(**build_args)``.

    ``config`` is the validated slot config, ``kind`` included; a host that saves what it built
    (``MemoNet.save_pretrained``) records it. Hosts see only this call and ``config``, never the
    registry (``memo_zoo.slots.temporal.TemporalFactory``, ``...audio_fusion.AudioFusionFactory``).
    """

    slot: str
    config: BaseModel
    build: Callable[..., Any]

    def __call__(self, **build_args: Any) -> Any:
        return self.build(self.config, **build_args)


@dataclass
class Registry:
    """Every component of every slot, and every CLI command plugins add."""

    components: dict[str, dict[str, Registered]] = field(default_factory=dict)
    commands: dict[str, tuple[CommandSpec, str]] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    recipe_model: Any = field(default=None, repr=False, compare=False)
    # Entry points left out by MEMO_ZOO_DISABLE_PLUGINS, kept to say which of them gives a kind
    # a recipe asks for (``why_missing``).
    disabled_entry_points: dict[str, EntryPoint] = field(default_factory=dict, repr=False, compare=False)
    # The plugin manager and plugin distributions whose component hooks ``load_components`` has yet
    # to call (set by ``load_registry(components=False)``); None once the components are in.
    pending: Any = field(default=None, repr=False, compare=False)

    def load_components(self) -> Registry:
        """Call the component hooks a ``load_registry(components=False)`` left out; a no-op after."""
        if self.pending is not None:
            manager, distributions = self.pending
            _collect_components(manager, distributions, self)
            self.pending = None
            self.plugins = _loaded_plugins(manager, self)
        return self

    def kinds(self, slot: str) -> list[str]:
        return sorted(self.components.get(slot, {}))

    def get(self, slot: str, kind: str) -> Registered:
        if slot not in SLOT_BY_NAME:
            raise PluginError(f"unknown slot {slot!r}; slots: {', '.join(s.name for s in SLOTS)}")
        try:
            return self.components[slot][kind]
        except KeyError:
            known = ", ".join(self.kinds(slot)) or "(none registered)"
            why = self.why_missing(slot, kind)
            raise PluginError(f"no component {kind!r} in slot {slot!r}; registered kinds: {known}"
                              + (f"; {why}" if why else "")) from None

    def why_missing(self, slot: str, kind: str) -> str | None:
        """Why ``kind`` is not registered in ``slot`` when a skipped plugin explains it, else None.

        A disabled plugin is not loaded, so what it would give is unknown. Built-in plugins
        (memo-zoo's own modules) are asked here, only once a recipe names a missing kind; a
        disabled third-party plugin is never imported (it may be disabled because its import
        breaks), so it is only named as a possible provider.
        """
        slot_spec = SLOT_BY_NAME.get(slot)
        if slot_spec is None:
            return None
        maybe: list[str] = []
        for name, ep in sorted(self.disabled_entry_points.items()):
            if _distribution_name(ep) != BUILTIN_DISTRIBUTION:
                maybe.append(name)
                continue
            if kind in _builtin_kinds(ep, slot_spec.hook):
                return (f"kind {kind!r} is provided by plugin {name!r}, which MEMO_ZOO_DISABLE_PLUGINS "
                        f"disables (remove {name} from it to use {kind!r})")
        failed = sorted(name for name, why in self.skipped.items() if why != DISABLED_REASON)
        notes = []
        if failed:
            notes.append("plugin(s) that failed to load and may provide it: "
                         + ", ".join(f"{name} ({self.skipped[name]})" for name in failed))
        if maybe:
            notes.append(f"MEMO_ZOO_DISABLE_PLUGINS disables {', '.join(maybe)}, which may provide it")
        return "; ".join(notes) or None

    def build(self, slot: str, config: BaseModel, **build_args: Any) -> Any:
        """Build the component that ``config`` (a validated recipe slot) selects."""
        return self.factory(slot, config)(**build_args)

    def factory(self, slot: str, config: BaseModel) -> ComponentFactory:
        """The factory of the component that ``config`` (a validated recipe slot) selects, for a
        host that builds it itself, with its own build arguments."""
        kind = getattr(config, "kind", None)
        if kind is None:
            raise PluginError(f"config for slot {slot!r} has no 'kind' ({type(config).__name__})")
        return ComponentFactory(slot, config, self.get(slot, kind).spec.factory)


def _plugin_entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=hookspecs.PROJECT_NAME), key=lambda ep: ep.name)


BUILTIN_DISTRIBUTION = "memo-zoo"


def _builtin_kinds(ep: EntryPoint, hook: str) -> list[str]:
    """Names a built-in plugin gives in the slot of ``hook``, read without registering it."""
    try:
        records = getattr(ep.load(), hook, lambda: [])() or []
        return [record.name for record in records if isinstance(record, ComponentSpec)]
    except (Exception, SystemExit):
        return []  # only a hint for an error message already on its way: never fail on it


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


def load_registry(disabled: Iterable[str] | None = None, extra_plugins: Iterable[tuple[str, object]] = (),
                  *, components: bool = True) -> Registry:
    """Load every plugin of the ``memo_zoo`` entry-point group and collect their components.

    ``disabled`` defaults to ``MEMO_ZOO_DISABLE_PLUGINS``; ``extra_plugins`` are
    ``(name, module_or_object)`` pairs registered after the entry points (for tests and
    embedding applications). ``components=False`` collects only the CLI commands; the
    components come with ``Registry.load_components()`` (module docstring).
    """
    # What the user's environment disables is explained to the user (unknown names, kinds a recipe
    # asks for); a caller passing ``disabled`` chose it in code and gets no such messages.
    from_environment = disabled is None
    if disabled is None:
        from memo_zoo.settings import get_settings

        disabled = get_settings().disabled_plugins
    disabled = frozenset(disabled)
    manager = new_plugin_manager()
    registry = Registry()
    distributions: dict[str, str | None] = {}
    entry_points_found = _plugin_entry_points()
    extra_plugins = list(extra_plugins)

    for ep in entry_points_found:
        if ep.name in disabled:
            registry.skipped[ep.name] = DISABLED_REASON
            if from_environment:
                registry.disabled_entry_points.setdefault(ep.name, ep)
            continue
        if manager.has_plugin(ep.name) or ep.name in registry.skipped:
            continue  # the same distribution seen twice on sys.path
        try:
            plugin = ep.load()
            manager.register(plugin, name=ep.name)
        # A broken plugin must not take the others down. SystemExit too: a plugin calling
        # sys.exit() while imported would otherwise end every command without naming itself.
        except (Exception, SystemExit) as error:
            reason = _describe_exception(error)
            registry.skipped[ep.name] = reason
            dist = _distribution_name(ep)
            warnings.warn(f"memo-zoo plugin {ep.name!r} (entry point {ep.name} = {ep.value}"
                          + (f", distribution {dist}" if dist else "")
                          + f") failed to load and was skipped: {reason}; to stop loading it, set "
                          f"MEMO_ZOO_DISABLE_PLUGINS={ep.name}", PluginLoadWarning, stacklevel=2)
            continue
        distributions[ep.name] = _distribution_name(ep)
    unknown = sorted(disabled - {ep.name for ep in entry_points_found} - {name for name, _ in extra_plugins})
    if unknown and from_environment:
        known = ", ".join(sorted({ep.name for ep in entry_points_found})) or "(none installed)"
        warnings.warn(f"MEMO_ZOO_DISABLE_PLUGINS names no installed plugin: {', '.join(unknown)} "
                      f"(nothing was disabled for {'them' if len(unknown) > 1 else 'it'}); plugins: {known}",
                      UnknownPluginWarning, stacklevel=2)
    for name, plugin in extra_plugins:
        manager.register(plugin, name=name)
        distributions[name] = None

    registry.pending = (manager, distributions)
    if components:
        registry.load_components()
    for impl in manager.hook.cli_commands.get_hookimpls():
        for command in _call_hook(impl, "cli_commands", CommandSpec, registry):
            if command.name in registry.commands:
                first = registry.commands[command.name][1]
                raise PluginError(f"command {command.name!r} is given by two plugins: {first!r} "
                                  f"and {impl.plugin_name!r}")
            registry.commands[command.name] = (command, impl.plugin_name)
    registry.plugins = _loaded_plugins(manager, registry)
    return registry


def _collect_components(manager: pluggy.PluginManager, distributions: dict[str, str | None],
                        registry: Registry) -> None:
    for slot in SLOTS:
        registry.components[slot.name] = {}
        for impl in getattr(manager.hook, slot.hook).get_hookimpls():
            for spec in _call_hook(impl, slot.hook, ComponentSpec, registry):
                _check_component(spec, impl.plugin_name, slot.name)
                if isinstance(spec.factory, LazyFactory) and spec.factory.plugin is None:
                    # Not imported here (that is the point of a lazy factory); bound to the plugin
                    # so that a reference that fails when built names who registered it.
                    spec = replace(spec, factory=spec.factory.for_plugin(impl.plugin_name))
                if spec.name in registry.components[slot.name]:
                    first = registry.components[slot.name][spec.name].plugin
                    raise PluginError(f"component name {spec.name!r} in slot {slot.name!r} is given by two "
                                      f"plugins: {first!r} and {impl.plugin_name!r}; disable one with "
                                      f"MEMO_ZOO_DISABLE_PLUGINS={impl.plugin_name}")
                registry.components[slot.name][spec.name] = Registered(
                    spec, impl.plugin_name, distributions.get(impl.plugin_name))


def _loaded_plugins(manager: pluggy.PluginManager, registry: Registry) -> list[str]:
    return sorted(name for name, _ in manager.list_name_plugin() if name not in registry.skipped)


def _call_hook(impl: pluggy.HookImpl, hook: str, kind: type, registry: Registry) -> list[Any]:
    try:
        records = impl.function()
    except Exception as error:
        registry.skipped[impl.plugin_name] = f"{hook} raised {type(error).__name__}: {error}"
        warnings.warn(f"memo-zoo plugin {impl.plugin_name!r}: hook {hook} raised and was skipped: "
                      f"{type(error).__name__}: {error}", PluginLoadWarning, stacklevel=3)
        return []
    return _check_records(records, kind, impl.plugin_name, hook)


def _describe_exception(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    return f"{type(error).__name__}: {error}"
