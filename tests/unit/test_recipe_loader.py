"""Loading recipes: includes, overrides, sweeps and the errors a user sees."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from memo_zoo.errors import RecipeError
from memo_zoo.recipe.loader import dump_recipe, load_recipe, variant_documents


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


BASE = """
    name: base
    task: {kind: smoke}
    model:
      vae: {kind: pixel, scaling_factor: 0.5}
    scheduler: {kind: flow_euler, steps: 20}
"""


def problems(error: RecipeError) -> dict[str, str]:
    return dict(error.problems)


def test_minimal_recipe_fills_defaults(tmp_path, registry):
    loaded = load_recipe(write(tmp_path / "r.yaml", "name: r\ntask: {kind: smoke}\n"), registry)
    assert loaded.recipe.seed == 0
    assert loaded.recipe.task.require_components is True
    assert loaded.recipe.model.temporal is None
    assert loaded.recipe.tracking.experiment == "memo-zoo"


def test_include_merges_base_under_recipe(tmp_path, registry):
    write(tmp_path / "base.yaml", BASE)
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "child.yaml", """
        include: ../base.yaml
        name: child
        scheduler: {steps: 5}
    """)
    recipe = load_recipe(tmp_path / "sub" / "child.yaml", registry).recipe
    assert (recipe.name, recipe.scheduler.steps, recipe.scheduler.shift) == ("child", 5, 1.0)
    assert recipe.model.vae.scaling_factor == 0.5
    assert "include" not in yaml.safe_load(dump_recipe(recipe))


def test_several_includes_apply_in_order(tmp_path, registry):
    write(tmp_path / "a.yaml", BASE)
    write(tmp_path / "b.yaml", "scheduler: {steps: 7}\nseed: 3\n")
    write(tmp_path / "c.yaml", "include: [a.yaml, b.yaml]\nseed: 4\n")
    recipe = load_recipe(tmp_path / "c.yaml", registry).recipe
    assert (recipe.scheduler.steps, recipe.seed, recipe.name) == (7, 4, "base")


def test_include_cycle_is_reported(tmp_path, registry):
    write(tmp_path / "a.yaml", "include: b.yaml\nname: a\n")
    write(tmp_path / "b.yaml", "include: a.yaml\n")
    with pytest.raises(RecipeError, match="include cycle: a.yaml -> b.yaml -> a.yaml"):
        load_recipe(tmp_path / "a.yaml", registry)


def test_missing_include_names_the_file(tmp_path, registry):
    write(tmp_path / "a.yaml", "include: gone.yaml\nname: a\n")
    with pytest.raises(RecipeError, match="included file not found: .*gone.yaml"):
        load_recipe(tmp_path / "a.yaml", registry)


def test_overrides_apply_before_validation(tmp_path, registry):
    path = write(tmp_path / "r.yaml", BASE)
    recipe = load_recipe(path, registry, ["scheduler.steps=3", "seed=9", "model.vae.scaling_factor=2"]).recipe
    assert (recipe.scheduler.steps, recipe.seed, recipe.model.vae.scaling_factor) == (3, 9, 2.0)


@pytest.mark.parametrize("text, path, fragment", [
    ("name: r\ntask: {kind: smok}\n", "task.kind", "unknown kind 'smok'; registered kinds in slot 'task': "),
    ("name: r\ntask: {}\n", "task.kind", "needs a 'kind'; registered kinds in slot 'task': "),
    ("name: r\ntask: {kind: smoke}\nscheduler: {kind: flow_euler, stepz: 3}\n", "scheduler.stepz",
     "did you mean 'steps'?"),
    ("name: r\ntask: {kind: smoke}\nscheduler: {kind: flow_euler, steps: many}\n", "scheduler.steps",
     "valid integer"),
    ("name: r\ntask: {kind: smoke}\nmodel: {vea: {kind: pixel}}\n", "model.vea", "did you mean 'vae'?"),
    ("name: r\ntask: {kind: smoke}\nseeed: 1\n", "seeed", "did you mean 'seed'?"),
    ("task: {kind: smoke}\n", "name", "Field required"),
    ("name: r\ntask: {kind: smoke}\nemotion_detector: {kind: fixed, label: joyful}\n", "emotion_detector",
     "'joyful' is not in the paper label set"),
])
def test_invalid_fields_are_reported_with_their_dotted_path(tmp_path, registry, text, path, fragment):
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path / "r.yaml", text), registry)
    found = problems(caught.value)
    assert path in found, found
    assert fragment in found[path]
    assert str(tmp_path / "r.yaml") in str(caught.value)


@pytest.mark.parametrize("text, headline", [
    ("name: [unclosed\n", "not valid YAML"),
    ("- a list\n", "invalid recipe"),
])
def test_unreadable_documents(tmp_path, registry, text, headline):
    with pytest.raises(RecipeError, match=headline):
        load_recipe(write(tmp_path / "r.yaml", text), registry)


def test_an_empty_slot_says_nothing_is_registered(tmp_path):
    from memo_zoo.plugin.manager import load_registry

    without_metrics = load_registry(disabled=("builtin_metrics", "builtin_talking_world"))
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path / "r.yaml", "name: r\ntask: {kind: smoke}\nmetrics: [{kind: fid}]\n"),
                    without_metrics)
    assert problems(caught.value)["metrics.0"] == (
        "unknown kind 'fid'; no component is registered in slot 'metric' (see `memo-zoo ls metric`)")


def test_unknown_kind_lists_every_registered_kind(tmp_path, registry):
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path / "r.yaml", "name: r\ntask: {kind: smok}\n"), registry)
    listed = problems(caught.value)["task.kind"].split("registered kinds in slot 'task': ")[1].split(" (see")[0]
    assert listed.split(", ") == registry.kinds("task")


def test_missing_recipe_file(tmp_path, registry):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml", registry)


def test_bad_override_is_a_recipe_error(tmp_path, registry):
    with pytest.raises(RecipeError, match="bad override"):
        load_recipe(write(tmp_path / "r.yaml", BASE), registry, ["steps"])


def test_sweep_variants_are_validated_and_expanded_in_order(tmp_path, registry):
    path = write(tmp_path / "r.yaml", BASE + """
    sweep:
      fast: {scheduler.steps: 2}
      shifted: {scheduler.shift: 3.0, seed: 5}
    """)
    loaded = load_recipe(path, registry)
    variants = variant_documents(loaded.document, str(path))
    assert [v.name for v in variants] == ["fast", "shifted"]
    assert variants[0].document["scheduler"]["steps"] == 2
    assert variants[1].document["seed"] == 5 and "sweep" not in variants[1].document


def test_an_invalid_sweep_variant_is_named(tmp_path, registry):
    path = write(tmp_path / "r.yaml", BASE + "    sweep:\n      broken: {scheduler.steps: -1}\n")
    with pytest.raises(RecipeError, match="sweep variant 'broken'") as caught:
        load_recipe(path, registry)
    assert "scheduler.steps" in problems(caught.value)


def test_resolved_recipe_round_trips(tmp_path, registry):
    loaded = load_recipe(write(tmp_path / "r.yaml", BASE), registry)
    again = load_recipe(write(tmp_path / "again.yaml", dump_recipe(loaded.recipe)), registry)
    assert again.recipe == loaded.recipe
