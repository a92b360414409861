"""Lazy component factories (issue 17.8; ``memo_zoo.plugin.lazy``).

A ``ComponentSpec.factory`` given as ``lazy("package.module:build")`` imports its module only when
called, so registering, listing and validating import no component module. These tests pin what
that promises: it resolves and calls the target, a bad reference is an error naming the plugin and
the reference, the repr and signature read well, the registry accepts it without importing it, and
every built-in reference resolves.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from memo_zoo.errors import PluginError
from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.lazy import LazyFactory, lazy
from memo_zoo.plugin.manager import load_registry


class ProbeConfig(BaseModel):
    """Options of the probe component the tests register."""

    model_config = ConfigDict(extra="forbid")

    scale: int = Field(2, description="what the probe factory multiplies by")


def probe_factory(config: ProbeConfig, channels: int) -> int:
    """A factory with a signature worth reading: ``(config, channels)``."""
    return config.scale * channels


@pytest.fixture
def fresh_module(tmp_path, monkeypatch):
    """A module nobody has imported yet: ``lazy_target_<n>`` with ``build(config) -> ("built", config)``."""
    name = f"lazy_target_{tmp_path.name.replace('-', '_')}"
    Path(tmp_path, f"{name}.py").write_text("def build(config):\n    return ('built', config)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_resolves_and_calls_the_target():
    factory = lazy("json:dumps")
    assert factory.resolve() is json.dumps
    assert factory({"a": 1}) == '{"a": 1}'
    # A dotted attribute reaches into a class.
    assert lazy("pathlib:Path.cwd").resolve() == Path.cwd


def test_imports_its_module_only_when_called(fresh_module):
    factory = lazy(f"{fresh_module}:build")
    assert callable(factory) and repr(factory) and factory == lazy(f"{fresh_module}:build")
    assert fresh_module not in sys.modules
    assert factory({"x": 1}) == ("built", {"x": 1})
    assert fresh_module in sys.modules


def test_repr_names_the_reference():
    assert repr(lazy("memo_zoo_plugins.temporal.identity:build")) == "lazy('memo_zoo_plugins.temporal.identity:build')"


def test_signature_is_the_targets():
    factory = lazy(f"{__name__}:probe_factory")
    assert inspect.signature(factory) == inspect.signature(probe_factory)
    assert list(inspect.signature(factory).parameters) == ["config", "channels"]
    # The class itself still has a signature of its own (no property object in the way).
    assert "reference" in inspect.signature(LazyFactory).parameters


@pytest.mark.parametrize("reference", ["no_colon", "json:", ":dumps", "json:dumps:again", "a..b:c", "json:1st", ""])
def test_malformed_reference_is_refused_when_written(reference):
    with pytest.raises(PluginError, match="must look like 'package.module:function'") as caught:
        lazy(reference)
    assert repr(reference) in str(caught.value)


@pytest.mark.parametrize("reference, message", [
    ("memo_zoo_no_such_package.module:build", "cannot be imported: ModuleNotFoundError"),
    ("json:no_such_function", "json has no attribute 'no_such_function'"),
    ("json:__name__", "is not callable"),
])
def test_bad_reference_names_the_plugin_and_the_reference(reference, message):
    factory = LazyFactory(reference, plugin="my_plugin")
    for attempt in (factory.resolve, lambda: factory({})):
        with pytest.raises(PluginError) as caught:
            attempt()
        text = str(caught.value)
        assert "plugin 'my_plugin'" in text and repr(reference) in text and message in text


def test_plugin_name_is_left_out_of_equality():
    assert LazyFactory("json:dumps", plugin="a") == LazyFactory("json:dumps", plugin="b") == lazy("json:dumps")
    assert lazy("json:dumps").for_plugin("a").plugin == "a"


class _ProbePlugin:
    """A third-party plugin whose scheduler factories are lazy: one good, one broken."""

    @hookimpl
    def scheduler_components(self) -> list[ComponentSpec]:
        return [ComponentSpec("lazy_probe", ProbeConfig, lazy(f"{__name__}:probe_factory"), "probe"),
                ComponentSpec("lazy_broken", ProbeConfig, lazy("memo_zoo_no_such_package.module:build"), "broken")]


def test_registry_accepts_lazy_factories_and_binds_the_plugin_name():
    registry = load_registry(disabled=(), extra_plugins=[("lazy_probe_plugin", _ProbePlugin())])
    probe = registry.get("scheduler", "lazy_probe").spec.factory
    assert isinstance(probe, LazyFactory) and probe.plugin == "lazy_probe_plugin"
    assert registry.build("scheduler", _ProbeSlot(kind="lazy_probe", scale=3), channels=5) == 15
    with pytest.raises(PluginError, match=r"plugin 'lazy_probe_plugin': factory "
                                          r"'memo_zoo_no_such_package\.module:build' cannot be imported"):
        registry.build("scheduler", _ProbeSlot(kind="lazy_broken"), channels=5)


class _ProbeSlot(ProbeConfig):
    """The probe's options as a validated recipe slot carries them: with the ``kind``."""

    kind: str = Field(..., description="the component the slot picks")


def test_every_builtin_reference_resolves(registry):
    # The component modules are imported here, once each: a typo in a built-in plugin.py's
    # reference (which registering no longer imports) fails here, not at a user's first build.
    lazies = [(slot, kind, entry.spec.factory) for slot, entries in registry.components.items()
              for kind, entry in entries.items() if isinstance(entry.spec.factory, LazyFactory)]
    assert len(lazies) >= 40
    for slot, kind, factory in lazies:
        assert callable(factory.resolve()), (slot, kind, factory)
