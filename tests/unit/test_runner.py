"""memo-zoo run against an embedded sqlite store: runs, sweeps, params, failures."""

from __future__ import annotations

import textwrap

import pytest
from mlflow import MlflowClient

from memo_zoo.recipe.loader import load_recipe
from memo_zoo.runner import run_recipe
from tests.support_plugins import RecordTask, registry_with_test_tasks


@pytest.fixture(scope="module")
def reg():
    return registry_with_test_tasks()


def recipe(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def client_for(outcome):
    return MlflowClient(tracking_uri=outcome.tracking_uri)


def test_smoke_run_logs_params_recipe_and_component_table(workdir, registry, repo_root):
    outcome = run_recipe(load_recipe(repo_root / "recipes" / "smoke.yaml", registry), registry)
    assert outcome.tracking_uri == f"sqlite:///{workdir.resolve()}/mlflow.db"
    client = client_for(outcome)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["scheduler.steps"] == "20"
    assert run.data.params["task.kind"] == "smoke"
    assert run.data.metrics["components_built"] >= 3
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {"recipe.yaml", "components.json"} <= artifacts
    assert (workdir / "mlartifacts").is_dir()


def test_sweep_makes_a_parent_and_one_nested_run_per_variant(workdir, reg):
    RecordTask.seen.clear()
    path = recipe(workdir, """
        name: sweepy
        seed: 1
        task: {kind: record, value: 1.0}
        sweep:
          low: {task.value: 0.25}
          high: {task.value: 4.0, seed: 7}
    """)
    outcome = run_recipe(load_recipe(path, reg), reg)
    assert RecordTask.seen == [("low", 0.25, 1), ("high", 4.0, 7)]
    client = client_for(outcome)
    for name, value in (("low", 0.25), ("high", 4.0)):
        child = client.get_run(outcome.child_run_ids[name])
        assert child.data.tags["mlflow.parentRunId"] == outcome.run_id
        assert child.data.tags["memo_zoo.variant"] == name
        assert child.data.metrics["value"] == value
        assert child.info.status == "FINISHED"
    assert client.get_run(outcome.run_id).info.status == "FINISHED"


def test_only_one_variant_can_be_run(workdir, reg):
    RecordTask.seen.clear()
    path = recipe(workdir, """
        name: sweepy
        task: {kind: record}
        sweep: {a: {task.value: 2.0}, b: {task.value: 3.0}}
    """)
    outcome = run_recipe(load_recipe(path, reg), reg, only_variant="b")
    assert list(outcome.child_run_ids) == ["b"] and RecordTask.seen == [("b", 3.0, 0)]


@pytest.mark.parametrize("error, exception", [("value", ValueError), ("interrupt", KeyboardInterrupt)])
def test_a_raising_task_leaves_its_run_failed_with_the_error(workdir, reg, error, exception):
    path = recipe(workdir, f"name: boom\ntask: {{kind: explode, error: {error}}}\n")
    started = []
    with pytest.raises(exception):
        run_recipe(load_recipe(path, reg), reg, on_start=started.append)
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir.resolve()}/mlflow.db")
    run = client.get_run(started[0])
    assert run.info.status == "FAILED"
    assert exception.__name__ in run.data.tags["error"]
    assert run.data.metrics["progress"] == 0.5, "what was logged before the error is kept"
    assert "error.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_a_failing_variant_fails_its_run_and_the_parent(workdir, reg):
    path = recipe(workdir, """
        name: partial
        task: {kind: explode}
        sweep: {only: {task.after_metric: false}}
    """)
    started = []
    with pytest.raises(ValueError):
        run_recipe(load_recipe(path, reg), reg, on_start=started.append)
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir.resolve()}/mlflow.db")
    parent = client.get_run(started[0])
    assert parent.info.status == "FAILED"
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert [c.info.status for c in children] == ["FAILED"]


def test_many_params_are_logged_in_batches(workdir, reg):
    long_description = "d" * 7000
    path = recipe(workdir, f"name: wide\ndescription: {long_description}\ntask: {{kind: record}}\n")
    outcome = run_recipe(load_recipe(path, reg), reg)
    params = client_for(outcome).get_run(outcome.run_id).data.params
    assert params["description"].endswith("...[truncated]")
    assert params["tracking.experiment"] == "memo-zoo"
