"""Issue 16, item 9: the smaller ways the CLI, plugin loading and recipe reading lost or bent input.

Each test names the fault it pins: options after overrides, a plugin that exits on import,
unknown or disabled plugin names, sweeps with several bad variants, duplicate YAML keys,
booleans read as numbers.
"""

from __future__ import annotations

import warnings

import pytest

from memo_zoo.cli.app import build_parser, core_commands
from memo_zoo.errors import PluginError, RecipeError
from memo_zoo.plugin.manager import PluginLoadWarning, UnknownPluginWarning, load_registry
from memo_zoo.recipe.loader import load_recipe, validate_document, validate_variants, variant_documents
from memo_zoo.recipe.merge import OverrideError, parse_override
from tests.fake_plugins import forget_modules, write_plugin_dist
from tests.unit.test_recipe_loader import write

BASE = """
    name: base
    task: {kind: smoke}
    model:
      temporal: {kind: linear_memory, gamma: 0.9}
      vae: {kind: pixel}
    scheduler: {kind: flow_euler, steps: 20}
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    forget_modules()


# --- a) options and overrides in any order ------------------------------------------------------

@pytest.fixture(scope="module")
def parser(registry):
    """The parser `memo-zoo` builds: core commands plus the plugins' (train, generate, report)."""
    return build_parser(core_commands() + [command for command, _ in registry.commands.values()])


def test_run_takes_an_override_after_a_flag(parser):
    args = parser.parse_args(["run", "recipes/smoke.yaml", "--quick", "seed=3"])
    assert (args.command, str(args.recipe), args.profile, args.overrides) == ("run", "recipes/smoke.yaml",
                                                                              "quick", ["seed=3"])
    assert args._command.name == "run"


def test_run_takes_overrides_on_both_sides_of_options(parser):
    args = parser.parse_args(["run", "R", "seed=1", "--variant", "n2", "a.b=2", "--profile", "quick", "c=3"])
    assert (args.variant, args.profile, args.overrides) == ("n2", "quick", ["seed=1", "a.b=2", "c=3"])


def test_train_takes_an_override_after_resume(parser):
    args = parser.parse_args(["train", "X", "--resume", "task.steps=5"])
    assert (str(args.recipe), args.resume, args.overrides) == ("X", True, ["task.steps=5"])
    assert args._command.name == "train"


def test_generate_takes_overrides_around_options(parser):
    args = parser.parse_args(["generate", "--recipe", "R", "key=v", "--seed", "3", "key2=v"])
    assert (str(args.recipe), args.seed, args.overrides) == ("R", 3, ["key=v", "key2=v"])
    assert args._command.name == "generate"


def test_validate_takes_files_after_options(parser):
    args = parser.parse_args(["validate", "a.yaml", "--print", "b.yaml", "--set", "seed=1"])
    assert ([str(p) for p in args.recipes], args.print_resolved, args.overrides) == (["a.yaml", "b.yaml"], True,
                                                                                    ["seed=1"])


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["--version"], ["run", "--help"], ["generate", "-h"]])
def test_help_and_version_still_exit_0(parser, argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args(argv)
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("argv, message", [
    ([], "required: COMMAND"),
    (["rnu", "r.yaml"], "invalid choice: 'rnu'"),
    (["--bogus", "run", "r.yaml"], "unrecognized arguments: --bogus"),
    (["run"], "required: recipe"),
    (["run", "r.yaml", "--nope"], "unrecognized arguments: --nope"),
])
def test_usage_errors_still_exit_2_with_argparse_message(parser, argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


# --- b) a plugin that exits or raises while imported ------------------------------------------

def test_plugin_calling_sys_exit_on_import_is_skipped_naming_it_and_how_to_disable(site):
    module = write_plugin_dist(site, "quitter", "import sys\nsys.exit('no licence file')\n", dist_name="quitter-dist")
    with pytest.warns(PluginLoadWarning) as caught:
        reg = load_registry(disabled=())
    message = str(caught[0].message)
    for part in ("'quitter'", f"quitter = {module}", "distribution quitter-dist", "sys.exit('no licence file')",
                 "MEMO_ZOO_DISABLE_PLUGINS=quitter"):
        assert part in message, message
    assert "quitter" in reg.skipped and "quitter" not in reg.plugins
    assert "flow_euler" in reg.kinds("scheduler")


def test_plugin_raising_on_import_names_entry_point_distribution_and_disable_hint(site):
    write_plugin_dist(site, "crashy", "raise RuntimeError('no GPU driver')\n", dist_name="crashy-dist")
    with pytest.warns(PluginLoadWarning, match=r"'crashy'.*distribution crashy-dist.*RuntimeError: no GPU driver"
                                               r".*MEMO_ZOO_DISABLE_PLUGINS=crashy"):
        load_registry(disabled=())


def test_a_kind_missing_because_its_plugin_failed_says_so(site, tmp_path):
    write_plugin_dist(site, "crashy", "raise RuntimeError('no GPU driver')\n")
    with pytest.warns(PluginLoadWarning):
        reg = load_registry(disabled=())
    with pytest.raises(PluginError, match=r"failed to load and may provide it: crashy \(RuntimeError: no GPU driver\)"):
        reg.get("scheduler", "crashy_sampler")


# --- c) MEMO_ZOO_DISABLE_PLUGINS: unknown names, and kinds it took away -------------------------

def test_unknown_names_in_disable_plugins_warn_listing_known_plugins(monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_DISABLE_PLUGINS", "builtin_vae, builtin_vea,nonesuch")
    with pytest.warns(UnknownPluginWarning) as caught:
        reg = load_registry()
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "builtin_vea, nonesuch" in message and "MEMO_ZOO_DISABLE_PLUGINS" in message
    assert "plugins: " in message and "builtin_vae" in message.split("plugins: ")[1]
    assert reg.kinds("vae") == []  # the known name is still honoured


def test_known_names_in_disable_plugins_do_not_warn(monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_DISABLE_PLUGINS", "builtin_vae")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_registry()


def test_a_recipe_naming_a_disabled_builtin_kind_says_which_plugin_is_disabled(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_DISABLE_PLUGINS", "builtin_temporal")
    reg = load_registry()
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path / "r.yaml", BASE), reg)
    message = dict(caught.value.problems)["model.temporal"]
    assert ("kind 'linear_memory' is provided by plugin 'builtin_temporal', which MEMO_ZOO_DISABLE_PLUGINS "
            "disables") in message


def test_a_disabled_kind_in_a_list_slot_says_so_too(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMO_ZOO_DISABLE_PLUGINS", "builtin_metrics,builtin_talking_world")
    reg = load_registry()
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path / "r.yaml", "name: r\ntask: {kind: smoke}\nmetrics: [{kind: fid}]\n"), reg)
    assert "provided by plugin 'builtin_metrics'" in dict(caught.value.problems)["metrics.0"]
    with pytest.raises(PluginError, match="provided by plugin 'builtin_metrics', which MEMO_ZOO_DISABLE_PLUGINS"):
        reg.get("metric", "fid")


def test_disabling_in_code_is_not_blamed_on_the_environment(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown name passed in code is the caller's business
        reg = load_registry(disabled=("builtin_temporal", "not_installed"))
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path / "r.yaml", BASE), reg)
    assert "MEMO_ZOO_DISABLE_PLUGINS" not in str(caught.value)


def test_a_typo_kind_with_nothing_disabled_keeps_the_plain_message(registry, tmp_path):
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path / "r.yaml", "name: r\ntask: {kind: smok}\n"), registry)
    message = dict(caught.value.problems)["task.kind"]
    assert message.startswith("unknown kind 'smok'; registered kinds in slot 'task': ")
    assert "DISABLE" not in message


# --- d) every bad sweep variant (and profile) in one error --------------------------------------

def test_every_bad_sweep_variant_is_reported_at_once(tmp_path, registry):
    path = write(tmp_path / "r.yaml", BASE + """
    sweep:
      good: {scheduler.steps: 2}
      negative: {scheduler.steps: -1}
      typo: {scheduler.stepz: 3}
      gamma: {model.temporal.gamma: high}
    """)
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, registry)
    error = caught.value
    assert error.headline == "invalid recipe in sweep variants 'negative', 'typo', 'gamma'"
    paths = [p for p, _ in error.problems]
    assert paths == ["variant negative: scheduler.steps", "variant typo: scheduler.stepz",
                     "variant gamma: model.temporal.gamma"]


def test_every_unappliable_sweep_variant_is_reported_at_once(tmp_path, registry):
    path = write(tmp_path / "r.yaml", BASE + """
    sweep:
      into_a_number: {scheduler.steps.x: 1}
      into_a_float: {model.temporal.gamma.y: 1}
      fine: {seed: 1}
    """)
    with pytest.raises(RecipeError, match="bad sweep variants") as caught:
        load_recipe(path, registry)
    assert [p for p, _ in caught.value.problems] == ["sweep.into_a_number", "sweep.into_a_float"]


def test_validate_variants_collects_all_and_returns_models_when_all_pass(tmp_path, registry):
    path = write(tmp_path / "r.yaml", BASE + "    sweep:\n      a: {seed: 1}\n      b: {seed: 2}\n")
    loaded = load_recipe(path, registry)
    resolved = validate_variants(variant_documents(loaded.document, loaded.source), registry, loaded.source)
    assert [(v.name, r.seed) for v, r in resolved] == [("a", 1), ("b", 2)]
    broken = [v.__class__(v.name, v.overrides, {**v.document, "seed": -1}) for v, _ in resolved]
    with pytest.raises(RecipeError) as caught:
        validate_variants(broken, registry, loaded.source)
    assert [p for p, _ in caught.value.problems] == ["variant a: seed", "variant b: seed"]


def test_every_bad_profile_is_reported_at_once(tmp_path, registry):
    path = write(tmp_path / "r.yaml", BASE + """
    profiles:
      quick: {scheduler.steps: 0}
      fine: {seed: 2}
      slow: {seed: -4}
    """)
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, registry)
    assert caught.value.headline == "invalid recipe with profiles 'quick', 'slow'"
    assert [p for p, _ in caught.value.problems] == ["profile quick: scheduler.steps", "profile slow: seed"]


# --- e) duplicate YAML keys; booleans are not numbers -------------------------------------------

def test_a_duplicate_top_level_key_is_an_error_naming_file_line_and_key(tmp_path, registry):
    path = write(tmp_path / "r.yaml", "name: a\ntask: {kind: smoke}\nseed: 1\nseed: 2\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, registry)
    error = caught.value
    assert error.headline == "recipe has a duplicate key" and error.source == str(path)
    [(where, message)] = error.problems
    assert where == "line 4, column 1"
    assert message.startswith("duplicate key 'seed' (first given on line 3)")


def test_a_duplicate_nested_key_is_an_error(tmp_path, registry):
    path = write(tmp_path / "r.yaml", BASE + "    sweep:\n      a: {seed: 1}\n      a: {seed: 2}\n")
    with pytest.raises(RecipeError, match="duplicate key 'a'") as caught:
        load_recipe(path, registry)
    assert caught.value.problems[0][0].startswith("line 10,")
    flow = write(tmp_path / "flow.yaml", "name: r\ntask: {kind: smoke}\nscheduler: {kind: flow_euler, steps: 2, steps: 3}\n")
    with pytest.raises(RecipeError, match="duplicate key 'steps'"):
        load_recipe(flow, registry)


def test_yaml_merge_keys_still_override_without_a_duplicate_error(tmp_path, registry):
    path = write(tmp_path / "r.yaml", """
        name: r
        task: {kind: smoke}
        scheduler: {kind: flow_euler}
        profiles:
          quick: &quick {scheduler.steps: 2, seed: 1}
          quicker:
            <<: *quick
            scheduler.steps: 1
    """)
    loaded = load_recipe(path, registry, profile="quicker")
    assert (loaded.recipe.seed, loaded.recipe.scheduler.steps) == (1, 1)


def test_a_duplicate_key_in_an_override_value_is_refused():
    with pytest.raises(OverrideError, match="duplicate key 'kind'"):
        parse_override("model.temporal={kind: none, kind: linear_memory}")


@pytest.mark.parametrize("text, path", [
    ("name: r\ntask: {kind: smoke}\nseed: true\n", "seed"),
    ("name: r\ntask: {kind: smoke}\nscheduler: {kind: flow_euler, steps: true}\n", "scheduler.steps"),
    ("name: r\ntask: {kind: smoke}\nscheduler: {kind: flow_euler, shift: false}\n", "scheduler.shift"),
    ("name: r\ntask: {kind: smoke}\nmodel: {temporal: {kind: linear_memory, gamma: true}}\n", "model.temporal.gamma"),
    ("name: r\ntask: {kind: smoke}\nmodel: {network: {preset: tiny, layers_per_block: true}}\n",
     "model.network.layers_per_block"),
])
def test_a_boolean_is_not_accepted_as_a_number(tmp_path, registry, text, path):
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path / "r.yaml", text), registry)
    problems = dict(caught.value.problems)
    assert path in problems, problems
    assert "got the boolean" in problems[path]


def test_a_boolean_in_a_nested_task_option_or_list_item_is_refused(registry):
    document = {"name": "r", "task": {"kind": "experiment", "train": {"steps": True}},
                "model": {"network": {"block_out_channels": [32, True]}},
                "metrics": [{"kind": "world_lip_sync", "max_lag": True}]}
    with pytest.raises(RecipeError) as caught:
        validate_document(document, registry, "test")
    assert {"task.train.steps", "model.network.block_out_channels.1", "metrics.0.max_lag"} <= set(
        dict(caught.value.problems)), caught.value.problems


def test_a_boolean_override_for_a_number_is_refused(tmp_path, registry):
    with pytest.raises(RecipeError, match="seed: expects a number, got the boolean true"):
        load_recipe(write(tmp_path / "r.yaml", BASE), registry, ["seed=true"])


def test_numbers_and_booleans_still_go_where_they_belong(tmp_path, registry):
    recipe = load_recipe(write(tmp_path / "r.yaml", """
        name: r
        seed: 3
        task: {kind: smoke, require_components: false}
        model:
          temporal: {kind: linear_memory, gamma: 1}
        scheduler: {kind: flow_euler, steps: 4, shift: 2}
    """), registry).recipe
    assert (recipe.seed, recipe.scheduler.steps) == (3, 4) and type(recipe.scheduler.steps) is int
    assert recipe.model.temporal.gamma == 1.0 and type(recipe.model.temporal.gamma) is float
    assert recipe.scheduler.shift == 2.0
    assert recipe.task.require_components is False
