"""A field has one home (issue 17, item 5): the sampler's step count is ``scheduler.steps``.

Older recipes that say ``task.generation.steps`` (experiment) or ``task.steps`` (generate) keep
working: each layer (file, profile, sweep variant, command line) is migrated on its own with a
``FutureWarning``, and the validated recipe, which MLflow logs, holds the count that runs.
"""

from __future__ import annotations

import warnings

import pytest

from memo_zoo.recipe.loader import dump_recipe, load_recipe, variant_documents
from memo_zoo.recipe.moved import migrate_document, migrate_overrides
from memo_zoo.tasks.experiment import steps_as_keyed


def write(tmp_path, text: str, repo_root):
    path = tmp_path / "r.yaml"
    path.write_text(f"include: {repo_root / 'recipes' / 'experiment_tiny.yaml'}\n" + text)
    return path


def load(path, registry, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_recipe(path, registry, **kwargs)
    return loaded, [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]


def test_the_shipped_recipe_and_its_quick_profile_name_one_home(registry, repo_root):
    loaded, moved = load(repo_root / "recipes" / "experiment_tiny.yaml", registry, profile="quick")
    assert moved == []
    assert loaded.recipe.scheduler.steps == 4
    assert "steps" not in loaded.recipe.task.generation.model_dump()


def test_an_older_file_moves_to_the_scheduler_and_the_old_name_wins_in_its_layer(tmp_path, registry, repo_root):
    path = write(tmp_path, "task: {generation: {steps: 7}}\nscheduler: {kind: flow_euler, steps: 12}\n", repo_root)
    loaded, moved = load(path, registry)
    assert loaded.recipe.scheduler.steps == 7
    assert len(moved) == 1 and "task.generation.steps" in moved[0] and "scheduler.steps" in moved[0]
    assert "12" in moved[0]  # says which value it replaced
    assert "steps: 7" in dump_recipe(loaded.recipe).split("scheduler:")[1]  # what MLflow logs is what runs


def test_a_later_layer_wins_whichever_name_either_used(tmp_path, registry, repo_root):
    path = write(tmp_path, "task: {generation: {steps: 7}}\n", repo_root)
    assert load(path, registry, overrides=["scheduler.steps=3"])[0].recipe.scheduler.steps == 3
    path = write(tmp_path, "scheduler: {kind: flow_euler, steps: 12}\n", repo_root)
    loaded, moved = load(path, registry, overrides=["task.generation.steps=5"])
    assert loaded.recipe.scheduler.steps == 5 and "command line" in moved[0]


def test_profiles_and_sweep_variants_are_migrated_on_their_own(tmp_path, registry, repo_root):
    path = write(tmp_path, "profiles: {slow: {task.generation.steps: 30}}\n"
                           "sweep: {a: {task.generation.steps: 2}, b: {task.generation: {steps: 6, clip_frames: 8}}}\n",
                 repo_root)
    loaded, moved = load(path, registry, profile="slow")
    assert loaded.recipe.scheduler.steps == 30 and any("profile slow" in m for m in moved)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        variants = {v.name: v.document for v in variant_documents(loaded.document, str(path))}
    assert variants["a"]["scheduler"]["steps"] == 2
    assert variants["b"]["scheduler"]["steps"] == 6 and variants["b"]["task"]["generation"]["clip_frames"] == 8
    assert "steps" not in variants["b"]["task"]["generation"]


def test_only_the_kind_whose_field_moved_is_touched():
    train = {"task": {"kind": "train", "steps": 300}, "scheduler": {"kind": "flow_euler", "steps": 20}}
    assert migrate_document(train, "t") == train
    assert migrate_overrides([("task.steps", 9)], "train", "t", "") == [("task.steps", 9)]
    generate = {"task": {"kind": "generate", "image": "a.png", "steps": 4}}
    with pytest.warns(FutureWarning, match="task.steps"):
        assert migrate_document(generate, "t") == {"task": {"kind": "generate", "image": "a.png"},
                                                  "scheduler": {"steps": 4}}
    with pytest.warns(FutureWarning):
        # A `task.kind` override in the same layer decides which names moved.
        assert migrate_overrides([("task.steps", 4), ("task.kind", "generate")], None, "t", "") == \
            [("task.kind", "generate"), ("scheduler.steps", 4)]


def test_video_keys_see_the_count_as_they_did_when_it_had_two_homes():
    from memo_zoo_plugins.scheduler.flow_euler import FlowEulerConfig

    generation = {"cfg": {"scale": 3.5}, "clip_frames": 16}
    scheduler = {"kind": "flow_euler", "steps": 10, "shift": 1.0}
    # Written as task.generation.steps: 10 over the default scheduler, as experiment_tiny did.
    assert steps_as_keyed(generation, scheduler, FlowEulerConfig) == (
        {**generation, "steps": 10}, {**scheduler, "steps": 20})
    assert steps_as_keyed(generation, {**scheduler, "steps": 20}, FlowEulerConfig) == (
        {**generation, "steps": None}, {**scheduler, "steps": 20})
