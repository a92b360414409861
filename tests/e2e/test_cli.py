"""The CLI as a new user meets it: ls, validate, schema, run, and every kind of bad input."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.e2e.cli_helpers import memo_zoo
from tests.fake_plugins import write_plugin_dist


def test_help_explains_each_command_with_an_example(tmp_path):
    top = memo_zoo("--help", cwd=tmp_path)
    assert top.returncode == 0
    for command in ("run", "validate", "schema", "ls"):
        assert command in top.stdout
        sub = memo_zoo(command, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and "example:" in sub.stdout, sub.stdout


def test_ls_shows_every_slot_with_plugin_and_summary(tmp_path):
    out = memo_zoo("ls", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for slot in ("temporal", "audio_fusion", "emotion_detector", "audio_encoder", "image_encoder", "vae",
                 "scheduler", "dataset", "preprocess", "metric", "task"):
        assert f"\n{slot}:" in "\n" + out.stdout
    rows = [line.split()[:4] for line in out.stdout.splitlines()]
    assert ["flow_euler", "builtin_scheduler", "(memo-zoo)", "Euler"] in rows


def test_ls_one_slot_shows_options_with_types_and_defaults(tmp_path):
    out = memo_zoo("ls", "scheduler", cwd=tmp_path)
    assert out.returncode == 0
    assert "steps: int = 20" in out.stdout and "shift: float = 1.0" in out.stdout


def test_ls_unknown_slot(tmp_path):
    out = memo_zoo("ls", "tempral", cwd=tmp_path)
    assert out.returncode == 2 and "unknown slot 'tempral'" in out.stderr


def test_schema_is_json_with_a_union_per_slot(tmp_path):
    out = memo_zoo("schema", cwd=tmp_path)
    assert out.returncode == 0
    schema = json.loads(out.stdout)
    assert schema["title"] == "Recipe"
    assert "SchedulerFlowEuler" in schema["$defs"]
    assert schema["$defs"]["SchedulerFlowEuler"]["properties"]["kind"]["const"] == "flow_euler"


def test_validate_all_recipes(tmp_path, repo_root):
    recipes = sorted(str(p) for p in (repo_root / "recipes").glob("*.yaml"))
    out = memo_zoo("validate", *recipes, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ok: ") == len(recipes)


def test_run_smoke_recipe_with_override(tmp_path, repo_root):
    out = memo_zoo("run", str(repo_root / "recipes" / "smoke.yaml"), "scheduler.steps=4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "finished" in out.stdout
    assert (tmp_path / "mlflow.db").is_file()


BAD_RECIPES = {
    "unknown_kind": ("name: x\ntask: {kind: smoke}\nscheduler: {kind: heun}\n", "unknown kind 'heun'"),
    "typo": ("name: x\ntask: {kind: smoke}\nscheduler: {kind: flow_euler, step: 3}\n", "did you mean 'steps'"),
    "wrong_type": ("name: x\ntask: {kind: smoke}\nseed: lots\n", "seed: Input should be a valid integer"),
    "broken_yaml": ("name: x\ntask: {kind: smoke\n", "not valid YAML"),
    "not_a_mapping": ("just text\n", "top level must be a mapping"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_bad_recipes_exit_2_with_one_screen_and_write_nothing(tmp_path, case):
    text, expected = BAD_RECIPES[case]
    (tmp_path / "bad.yaml").write_text(text)
    out = memo_zoo("run", "bad.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert expected in out.stderr
    assert "bad.yaml" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.splitlines()) < 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"], "nothing may be written"


def test_missing_recipe_file(tmp_path):
    out = memo_zoo("run", "nowhere.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "recipe file not found" in out.stderr and "Traceback" not in out.stderr


def test_validate_reports_each_bad_file_and_exits_2(tmp_path, repo_root):
    (tmp_path / "bad.yaml").write_text(BAD_RECIPES["typo"][0])
    out = memo_zoo("validate", str(repo_root / "recipes" / "smoke.yaml"), "bad.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "ok: " in out.stdout and "did you mean 'steps'" in out.stderr


def test_a_plugin_raising_on_import_is_a_warning_and_the_rest_works(tmp_path, repo_root):
    site = tmp_path / "site"
    site.mkdir()
    write_plugin_dist(site, "exploding", "raise ImportError('needs a library that is not installed')\n")
    out = memo_zoo("ls", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert out.returncode == 0
    assert "warning: memo-zoo plugin 'exploding'" in out.stderr
    assert "needs a library that is not installed" in out.stderr
    assert "Traceback" not in out.stderr
    assert "flow_euler" in out.stdout


def test_two_plugins_with_one_name_exit_2_naming_both(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    source = """
        from pydantic import BaseModel, ConfigDict
        from memo_zoo.plugin import ComponentSpec, hookimpl
        class Cfg(BaseModel):
            model_config = ConfigDict(extra="forbid")
        @hookimpl
        def vae_components():
            return [ComponentSpec("pixel", Cfg, lambda c: None, "a second pixel")]
    """
    write_plugin_dist(site, "copycat", textwrap.dedent(source))
    out = memo_zoo("ls", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert out.returncode == 2
    assert "'builtin_vae'" in out.stderr and "'copycat'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_plugin_adds_a_command(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_plugin_dist(site, "greeter", """
        from memo_zoo.plugin import CommandSpec, hookimpl
        def configure(parser):
            parser.add_argument("who")
        def run(args):
            print(f"hello {args.who}")
            return 0
        @hookimpl
        def cli_commands():
            return [CommandSpec("greet", "say hello", configure, run, example="memo-zoo greet world")]
    """)
    env = {"PYTHONPATH": str(site)}
    assert "greet" in memo_zoo("--help", cwd=tmp_path, env=env).stdout
    out = memo_zoo("greet", "zoo", cwd=tmp_path, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "hello zoo"


def test_a_plugin_may_not_take_a_core_command_name(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_plugin_dist(site, "usurper", """
        from memo_zoo.plugin import CommandSpec, hookimpl
        @hookimpl
        def cli_commands():
            return [CommandSpec("run", "not the real run", lambda p: None, lambda a: 0)]
    """)
    out = memo_zoo("ls", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert out.returncode == 2 and "'run'" in out.stderr and "usurper" in out.stderr
