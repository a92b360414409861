"""Recipe profiles (``profiles:`` + ``--profile`` / ``--quick``) and the runner's finish_sweep hook."""

from __future__ import annotations

import textwrap

import pytest

from memo_zoo.errors import RecipeError
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.runner import run_recipe
from tests.e2e.cli_helpers import memo_zoo
from tests.support_plugins import RecordTask, registry_with_test_tasks

RECIPE = """
    name: profiled
    seed: 1
    task: {kind: record, value: 1.0}
    profiles:
      quick: {task.value: 2.0, seed: 5}
      slow: {task.value: 9.0}
    sweep:
      a: {}
      b: {task.value: 3.0}
"""


@pytest.fixture(scope="module")
def reg():
    return registry_with_test_tasks()


def write(tmp_path, text=RECIPE):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_profile_applies_before_variants(tmp_path, reg):
    loaded = load_recipe(write(tmp_path), reg, profile="quick")
    assert loaded.recipe.task.value == 2.0 and loaded.recipe.seed == 5
    # a variant's own override still wins over the profile; the rest comes from the profile
    plain = load_recipe(write(tmp_path), reg)
    assert plain.recipe.task.value == 1.0 and plain.recipe.seed == 1


def test_command_line_override_wins_over_profile(tmp_path, reg):
    loaded = load_recipe(write(tmp_path), reg, ["task.value=7"], profile="quick")
    assert loaded.recipe.task.value == 7.0


def test_unknown_profile_names_the_known_ones(tmp_path, reg):
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path), reg, profile="fast")
    assert "no profile 'fast'" in str(error.value) and "quick, slow" in str(error.value)


def test_a_broken_profile_fails_validation_even_when_not_chosen(tmp_path, reg):
    text = RECIPE.replace("slow: {task.value: 9.0}", "slow: {task.valu: 9.0}")
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, text), reg)
    assert "profile 'slow'" in str(error.value) and "valu" in str(error.value)


def test_sweep_calls_finish_sweep_on_the_parent_with_every_child(workdir, reg):
    RecordTask.seen.clear()
    RecordTask.finished.clear()
    outcome = run_recipe(load_recipe(write(workdir), reg, profile="quick"), reg)
    assert [(v, value) for v, value, _ in RecordTask.seen] == [("a", 2.0), ("b", 3.0)]
    assert RecordTask.finished == [(outcome.run_id, outcome.child_run_ids)]


def test_quick_flag_is_profile_quick(tmp_path, repo_root):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntask: {kind: smoke}\n")
    out = memo_zoo("run", str(path), "--quick", cwd=tmp_path)
    assert out.returncode == 2 and "no profile 'quick'" in out.stderr and "(the recipe has no profiles)" in out.stderr
