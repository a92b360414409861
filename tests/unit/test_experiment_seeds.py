"""Several training seeds per variant (issue 19, item 6): ``task.seeds`` makes the runner run each
variant once per seed (seed, seed + 1, ...), each a nested MLflow run with its own training keys,
and the report gives each variant's mean and spread over seeds and flags the differences from the
baseline that exceed the spread. With one seed, nothing changes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from mlflow import MlflowClient
from pydantic import BaseModel, ConfigDict, Field

from memo_zoo.eval.report import (VariantResult, beyond_spread, collect, report_run, seed_mean, seed_spread,
                                  seeded_table, summarise_seeds, write_report)
from memo_zoo.plugin import ComponentSpec, hookimpl
from memo_zoo.plugin.manager import load_registry
from memo_zoo.recipe.loader import load_recipe, validate_variants, variant_documents
from memo_zoo.runner import SEED_TAG, replicates, run_recipe
from memo_zoo.tasks.experiment import generation_key, shared_stage1, stage1_key, training_key
from tests.unit.test_experiment_keys import KEYS

NAN = float("nan")


# ---- the runner: which runs a recipe makes ----------------------------------------------------


def _plan(registry, repo_root, recipe, *overrides, profile="quick"):
    loaded = load_recipe(repo_root / "recipes" / recipe, registry, list(overrides), profile=profile)
    resolved = validate_variants(variant_documents(loaded.document, loaded.source), registry, loaded.source)
    return replicates([(v.name, v.overrides, v.document, r) for v, r in resolved], registry, loaded.source)


def _keys(recipe):
    train = training_key(recipe, recipe.task)
    split = shared_stage1(recipe.task)
    return train, None if split is None else stage1_key(recipe, recipe.task, split[0]), \
        generation_key(recipe, recipe.task, train)


def test_one_seed_is_one_run_per_variant_named_as_before(registry, repo_root):
    plan = _plan(registry, repo_root, "ablate_memory.yaml")
    assert [(r.run_name, r.variant, r.seed) for r in plan] == [
        (name, name, None) for name in ("self_attention_n2", "self_attention_n4", "self_attention_n16",
                                        "linear_memory")]
    assert all(_keys(r.recipe) == KEYS[("ablate_memory.yaml", "quick", r.variant)] for r in plan)
    assert plan[0].overrides == {"model.temporal": {"kind": "self_attention", "motion_frames": 2}}


def test_two_seeds_train_each_variant_twice_with_distinct_keys(registry, repo_root):
    plan = _plan(registry, repo_root, "ablate_memory.yaml", "task.seeds=2")
    variants = ["self_attention_n2", "self_attention_n4", "self_attention_n16", "linear_memory"]
    # round by round: every variant's first seed, then every variant's second
    assert [(r.run_name, r.variant, r.seed) for r in plan] == (
        [(f"{v}.seed0", v, 0) for v in variants] + [(f"{v}.seed1", v, 1) for v in variants])
    assert all(r.recipe.seed == r.seed and r.overrides["seed"] == r.seed for r in plan)
    keys = {(r.variant, r.seed): _keys(r.recipe) for r in plan}
    trainings = {train for train, _, _ in keys.values()}
    assert len(trainings) == 8  # two trainings per variant, none shared across variants or seeds
    # seed 0 is the recipe's own seed: the one-seed ablation's keys, so its work is reused
    assert all(keys[(v, 0)] == KEYS[("ablate_memory.yaml", "quick", v)] for v in variants)
    # stage 1 is still shared by every variant, once per seed
    assert {keys[(v, 0)][1] for v in variants} == {KEYS[("ablate_memory.yaml", "quick", "linear_memory")][1]}
    assert len({keys[(v, 1)][1] for v in variants}) == 1 and keys[(variants[0], 1)][1] != keys[(variants[0], 0)][1]


def test_the_seeds2_profile_and_a_later_start_seed(registry, repo_root):
    plan = _plan(registry, repo_root, "ablate_memory.yaml", "seed=3", profile="seeds2")
    assert [r.seed for r in plan] == [3, 3, 3, 3, 4, 4, 4, 4]
    assert plan[-1].run_name == "linear_memory.seed4"


def test_generation_only_variants_share_one_training_per_seed(registry, repo_root):
    plan = _plan(registry, repo_root, "ablate_cfg.yaml", "task.seeds=2")
    by_seed: dict[int, set[str]] = {}
    for r in plan:
        by_seed.setdefault(r.seed, set()).add(training_key(r.recipe, r.recipe.task))
    assert sorted(by_seed) == [0, 1] and all(len(keys) == 1 for keys in by_seed.values())
    assert by_seed[0] != by_seed[1]
    assert len({generation_key(r.recipe, r.recipe.task, training_key(r.recipe, r.recipe.task)) for r in plan}) == 10


def test_seeds_is_a_count_of_at_least_one(registry, repo_root):
    from memo_zoo.errors import RecipeError

    with pytest.raises(RecipeError, match="task.seeds"):
        _plan(registry, repo_root, "ablate_memory.yaml", "task.seeds=0")
    with pytest.raises(RecipeError, match="task.seeds"):
        _plan(registry, repo_root, "ablate_memory.yaml", "task.seeds=[0, 1]")


class SeededConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float = Field(1.0, description="the figure this task logs (plus its seed / 10)")
    seeds: int = Field(1, ge=1, description="seeds per variant, as the experiment task's")


class SeededTask:
    """Logs ``value + seed / 10`` as an evaluation figure; records the runs and the finish call."""

    seen: list[tuple[str | None, int, str]] = []
    finished: list[dict[str, str]] = []

    def __init__(self, config: SeededConfig):
        self.config = config

    def run(self, context) -> None:
        SeededTask.seen.append((context.variant, context.recipe.seed, context.run.id))
        context.run.log_metrics({"eval/figure": self.config.value + context.recipe.seed / 10}, step=0)

    def finish_sweep(self, context, children: dict[str, str]) -> None:
        SeededTask.finished.append(dict(children))


class SeededTasks:
    @hookimpl
    def task_components(self):
        return [ComponentSpec("seeded", SeededConfig, SeededTask, "logs a seeded figure")]


@pytest.fixture(scope="module")
def seeded_registry():
    return load_registry(disabled=(), extra_plugins=[("seeded_tasks", SeededTasks())])


def _run(workdir, registry, text, *overrides):
    path = workdir / "r.yaml"
    path.write_text(text)
    SeededTask.seen.clear()
    SeededTask.finished.clear()
    outcome = run_recipe(load_recipe(path, registry, list(overrides)), registry, workdir=workdir)
    client = MlflowClient(outcome.tracking_uri)
    children = {name: client.get_run(run_id) for name, run_id in outcome.child_run_ids.items()}
    return outcome, client, children


SWEEP = "name: s\nseed: 0\ntask: {kind: seeded}\nsweep:\n  base: {}\n  high: {task.value: 2.0}\n"


def test_each_variant_and_seed_is_a_nested_run(workdir, seeded_registry):
    outcome, client, children = _run(workdir, seeded_registry, SWEEP, "task.seeds=2")
    assert list(children) == ["base.seed0", "high.seed0", "base.seed1", "high.seed1"]
    assert [(v, s) for v, s, _ in SeededTask.seen] == [("base", 0), ("high", 0), ("base", 1), ("high", 1)]
    for name, run in children.items():
        variant, seed = name.split(".seed")
        assert run.data.tags["mlflow.runName"] == name and run.data.tags["mlflow.parentRunId"] == outcome.run_id
        assert run.data.tags["memo_zoo.variant"] == variant and run.data.tags[SEED_TAG] == seed
        assert run.data.params["seed"] == seed and run.data.params["task.seeds"] == "2"
        local = client.download_artifacts(run.info.run_id, "variant_overrides.json", str(workdir))
        assert json.load(open(local))["seed"] == int(seed)
    assert SeededTask.finished == [outcome.child_run_ids]
    _, variants = collect(client, outcome.run_id)
    summaries = summarise_seeds(variants)
    assert [s.result.name for s in summaries] == ["base", "high"]
    assert summaries[1].result.figures["figure"] == pytest.approx(2.05)
    assert summaries[1].spread["figure"] == pytest.approx(math.sqrt(0.005))
    assert summaries[1].beyond["figure"] is True


def test_one_seed_keeps_the_runs_as_they_were(workdir, seeded_registry):
    outcome, _, children = _run(workdir, seeded_registry, SWEEP)
    assert list(children) == ["base", "high"]
    assert all(SEED_TAG not in run.data.tags for run in children.values())
    assert all(run.data.tags["mlflow.runName"] == name for name, run in children.items())


def test_a_recipe_without_sweep_gets_a_parent_with_a_run_per_seed(workdir, seeded_registry):
    text = "name: single\nseed: 5\ntask: {kind: seeded, seeds: 3}\n"
    outcome, _, children = _run(workdir, seeded_registry, text)
    assert list(children) == ["single.seed5", "single.seed6", "single.seed7"]
    assert [(v, s) for v, s, _ in SeededTask.seen] == [("single", 5), ("single", 6), ("single", 7)]
    assert SeededTask.finished == [outcome.child_run_ids]
    # and without seeds, one run, no parent
    _, _, none = _run(workdir, seeded_registry, "name: single\ntask: {kind: seeded}\n")
    assert none == {} and [v for v, _, _ in SeededTask.seen] == [None]


# ---- the report: mean, spread and the beyond-spread rule on hand-made tables ------------------


def test_mean_and_spread_over_seeds():
    assert seed_mean([1.0, 2.0, 4.0]) == pytest.approx(7 / 3)
    assert seed_spread([1.0, 2.0, 4.0]) == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert seed_spread([1.0, 3.0]) == pytest.approx(math.sqrt(2))  # sample std of two: |a - b| / sqrt(2)
    # a seed without the figure (a failed run) is left out of both; one value has no spread
    assert seed_mean([1.0, NAN, 3.0]) == 2.0 and seed_spread([1.0, NAN, 3.0]) == pytest.approx(math.sqrt(2))
    assert math.isnan(seed_spread([1.0, NAN])) and math.isnan(seed_mean([NAN, NAN]))


@pytest.mark.parametrize("args, expected", [
    ((1.0, 0.1, 0.5, 0.2), True),     # |0.5| > max(0.1, 0.2)
    ((1.0, 0.6, 0.5, 0.2), False),    # the variant's own spread is larger than the difference
    ((0.5, 0.1, 1.0, 0.5), False),    # the baseline's spread covers it (sign does not matter)
    ((0.7, 0.2, 0.5, 0.1), False),    # exactly the spread: not beyond it
    ((1.0, 0.0, 1.0, 0.0), False),    # identical seeds, identical means
    ((1.0, NAN, 0.5, 0.2), None),     # no spread (one seed): undecided
    ((NAN, 0.1, 0.5, 0.2), None),
])
def test_beyond_spread_rule(args, expected):
    assert beyond_spread(*args) is expected


def _seeded(name, seed, figures, status="FINISHED", series=None):
    return VariantResult(name, f"{name}-{seed}", status, figures, 25.0, series or {}, seed=seed)


def _hand_made():
    curve = np.linspace(1.0, 0.5, 100)
    return [
        _seeded("memo", 0, {"world_identity": 0.80, "world_fd": 10.0}, series={"v/identity": curve}),
        _seeded("sa2", 0, {"world_identity": 0.60, "world_fd": 11.0}, series={"v/identity": curve * 0.9}),
        _seeded("memo", 1, {"world_identity": 0.84, "world_fd": 14.0}, series={"v/identity": curve[:80] + 0.1}),
        _seeded("sa2", 1, {"world_identity": 0.62, "world_fd": 9.0}, series={"v/identity": curve * 0.8}),
        _seeded("sa16", 0, {"world_identity": 0.81}),
        _seeded("sa16", 1, {}, status="FAILED"),
    ]


def test_summaries_group_by_variant_with_the_first_as_baseline():
    memo, sa2, sa16 = summarise_seeds(_hand_made())
    assert [s.result.name for s in (memo, sa2, sa16)] == ["memo", "sa2", "sa16"]
    assert [r.seed for r in memo.runs] == [0, 1]
    assert memo.result.figures == pytest.approx({"world_identity": 0.82, "world_fd": 12.0})
    assert memo.spread["world_identity"] == pytest.approx(np.std([0.80, 0.84], ddof=1))
    assert memo.beyond == {}  # the baseline is not compared with itself
    # identity: |0.61 - 0.82| = 0.21 > max(0.014, 0.028); fd: |10 - 12| = 2 < max(1.41, 2.83)
    assert sa2.beyond == {"world_identity": True, "world_fd": False}
    # one finished seed: a mean but no spread, so no verdict; the failed seed shows in the status
    assert sa16.result.figures == {"world_identity": 0.81} and math.isnan(sa16.spread["world_identity"])
    assert sa16.beyond == {"world_identity": None} and sa16.result.status == "FINISHED/FAILED"
    # curves: the frame-by-frame mean over seeds, cut to the shortest
    assert len(memo.result.series["v/identity"]) == 80
    assert memo.result.series["v/identity"][0] == pytest.approx(1.05)


def test_the_seeded_table_has_mean_std_and_flag_per_figure():
    table = seeded_table(summarise_seeds(_hand_made()))
    assert list(table) == ["variant", "status", "seeds", "world_fd", "world_fd_std", "world_fd_beyond_spread",
                           "world_identity", "world_identity_std", "world_identity_beyond_spread"]
    assert table["seeds"] == ["0, 1", "0, 1", "0, 1"]
    assert table["world_identity"] == pytest.approx([0.82, 0.61, 0.81])
    assert table["world_identity_beyond_spread"] == [None, True, None]
    assert table["world_fd_beyond_spread"] == [None, False, None]
    assert math.isnan(table["world_fd"][2]) and math.isnan(table["world_fd_std"][2])


class _Run:
    info = type("info", (), {"run_id": "p", "status": "FINISHED"})()
    data = type("data", (), {"tags": {"mlflow.runName": "ablate"}})()


def test_the_seeded_report_shows_mean_plus_minus_std_and_marks(tmp_path):
    files = write_report(_Run(), _hand_made(), tmp_path / "report")
    text = files.markdown.read_text()
    assert "comparison of 3 variant(s), up to 2 seed(s) each" in text
    assert "| variant | status | seeds | world_fd | world_identity |" in text
    # bold = best mean (identity higher is better), dagger = beyond the spread of the baseline
    assert "| memo | FINISHED | 0, 1 | 12 \u00b1 2.828 | **0.82 \u00b1 0.02828** |" in text
    assert "| sa2 | FINISHED | 0, 1 | **10 \u00b1 1.414** | 0.61 \u00b1 0.01414 \u2020 |" in text
    assert "| sa16 | FINISHED/FAILED | 0, 1 | n/a \u00b1 n/a | 0.81 \u00b1 n/a |" in text
    assert "max(std, baseline std)" in text and "first variant (memo)" in text
    assert "memo: seed 0 `memo-0`, seed 1 `memo-1`" in text
    assert "\u2020" in files.html.read_text() and "max(std, baseline std)" in files.html.read_text()
    assert {p.name for p in files.plots} == {"metrics_per_variant.png", "identity_over_time.png"}
    assert all(p.stat().st_size > 1000 for p in files.plots)


def test_the_report_of_a_seeded_sweep_is_logged_with_its_table(workdir, seeded_registry):
    outcome, client, _ = _run(workdir, seeded_registry, SWEEP, "task.seeds=2")
    parent = client.get_run(outcome.run_id)
    from memo_zoo.tracking.tracker import TrackedRun

    files = report_run(client, outcome.run_id, workdir / "report", log_to=TrackedRun(client, parent.info.run_id,
                                                                            parent.info.experiment_id))
    assert files.table["variant"] == ["base", "high"] and files.table["figure_beyond_spread"] == [None, True]
    local = client.download_artifacts(outcome.run_id, "comparison.json", str(workdir))
    logged = json.load(open(local))
    assert logged["columns"][:3] == ["variant", "status", "seeds"]


def test_one_seed_reports_keep_their_one_run_layout(tmp_path):
    runs = [VariantResult("memo", "r1", "FINISHED", {"world_identity": 0.8}, 25.0),
            VariantResult("sa2", "r2", "FINISHED", {"world_identity": 0.6}, 25.0)]
    files = write_report(_Run(), runs, tmp_path / "report")
    assert files.table == {"variant": ["memo", "sa2"], "status": ["FINISHED", "FINISHED"], "world_identity": [0.8, 0.6]}
    text = files.markdown.read_text()
    assert "comparison of 2 variant(s)\n" in text and "| memo | FINISHED | **0.8** |" in text
    assert "\u00b1" not in text and "\u2020" not in text and "\u00b1" not in files.html.read_text()
