"""Plugin loading rules (architecture.md, "Plugins"): attribution, failures, blocklist, clashes."""

from __future__ import annotations

import warnings

import pytest

from memo_zoo.errors import PluginError
from memo_zoo.plugin.manager import PluginLoadWarning, load_registry
from tests.fake_plugins import forget_modules, write_plugin_dist

GOOD = """
from pydantic import BaseModel, ConfigDict
from memo_zoo.plugin import ComponentSpec, hookimpl

class Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 4

@hookimpl
def scheduler_components():
    return [ComponentSpec("{name}", Cfg, lambda cfg: ("built", cfg.width), "a test sampler")]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    forget_modules()


def test_builtins_register_through_entry_points(registry):
    assert "smoke" in registry.kinds("task")
    assert registry.get("scheduler", "flow_euler").plugin == "builtin_scheduler"
    assert registry.get("scheduler", "flow_euler").distribution == "memo-zoo"


def test_third_party_component_is_registered_with_its_plugin_and_distribution(site):
    write_plugin_dist(site, "my_sampler", GOOD.replace("{name}", "my_euler"), dist_name="my-dist")
    reg = load_registry(disabled=())
    entry = reg.get("scheduler", "my_euler")
    assert (entry.plugin, entry.distribution) == ("my_sampler", "my-dist")
    assert reg.build("scheduler", entry.spec.config(width=7).model_copy(update={"kind": "my_euler"})) == ("built", 7)


def test_plugin_failing_to_import_warns_with_its_name_and_others_still_load(site):
    write_plugin_dist(site, "broken_one", "raise RuntimeError('no GPU driver here')\n")
    with pytest.warns(PluginLoadWarning, match=r"broken_one.*RuntimeError: no GPU driver here"):
        reg = load_registry(disabled=())
    assert "broken_one" in reg.skipped
    assert "flow_euler" in reg.kinds("scheduler")


def test_hook_that_raises_warns_and_is_skipped(site):
    write_plugin_dist(site, "raising_hook", """
        from memo_zoo.plugin import hookimpl
        @hookimpl
        def metric_components():
            raise ValueError("weights folder unreadable")
    """)
    with pytest.warns(PluginLoadWarning, match="raising_hook.*metric_components.*weights folder unreadable"):
        reg = load_registry(disabled=())
    assert "raising_hook" in reg.skipped


def test_two_plugins_with_one_name_is_an_error_naming_both(site):
    write_plugin_dist(site, "first_plugin", GOOD.replace("{name}", "twin"))
    write_plugin_dist(site, "second_plugin", GOOD.replace("{name}", "twin"))
    with pytest.raises(PluginError, match=r"'twin'.*'first_plugin'.*'second_plugin'"):
        load_registry(disabled=())


def test_clash_with_a_builtin_names_the_builtin(site):
    write_plugin_dist(site, "shadow", GOOD.replace("{name}", "flow_euler"))
    with pytest.raises(PluginError, match="builtin_scheduler.*shadow|shadow.*builtin_scheduler"):
        load_registry(disabled=())


def test_blocklist_skips_plugins_by_entry_point_name(site, monkeypatch):
    write_plugin_dist(site, "first_plugin", GOOD.replace("{name}", "twin"))
    write_plugin_dist(site, "second_plugin", GOOD.replace("{name}", "twin"))
    monkeypatch.setenv("MEMO_ZOO_DISABLE_PLUGINS", "second_plugin, builtin_vae")
    reg = load_registry()
    assert reg.get("scheduler", "twin").plugin == "first_plugin"
    assert reg.kinds("vae") == []
    assert set(reg.skipped) == {"second_plugin", "builtin_vae"}


@pytest.mark.parametrize("body, message", [
    ("return {'not': 'a list'}", "must return a list of ComponentSpec"),
    ("return [('name', 'cfg')]", "expected ComponentSpec"),
    ("return [ComponentSpec('Bad-Name', Cfg, print, 's')]", "name must match"),
    ("return [ComponentSpec('loose', Loose, print, 's')]", "extra='forbid'"),
    ("return [ComponentSpec('kinded', Kinded, print, 's')]", "must not declare a 'kind'"),
    ("return [ComponentSpec('nofactory', Cfg, 3, 's')]", "factory must be callable"),
])
def test_malformed_hook_results_are_errors_naming_the_plugin(site, body, message):
    write_plugin_dist(site, "sloppy", f"""
        from pydantic import BaseModel, ConfigDict
        from memo_zoo.plugin import ComponentSpec, hookimpl
        class Cfg(BaseModel):
            model_config = ConfigDict(extra="forbid")
        class Loose(BaseModel):
            pass
        class Kinded(BaseModel):
            model_config = ConfigDict(extra="forbid")
            kind: str = "x"
        @hookimpl
        def vae_components():
            {body}
    """)
    with pytest.raises(PluginError, match=f"sloppy.*{message}|{message}"):
        load_registry(disabled=())


def test_unknown_kind_lists_registered_kinds(registry):
    with pytest.raises(PluginError, match="registered kinds: flow_euler"):
        registry.get("scheduler", "nope")


def test_loading_twice_gives_equal_registries_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first, second = load_registry(disabled=()), load_registry(disabled=())
    assert {s: sorted(c) for s, c in first.components.items()} == {s: sorted(c) for s, c in second.components.items()}
