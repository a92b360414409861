"""Tracking against a REAL `mlflow server` on 127.0.0.1, as a team server would be used.

The server is started by the fixture on a free port (one worker, job execution off) and stopped
by its PID at the end. Artifacts go through the server (proxied), as they do for remote users.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from memo_zoo.recipe.loader import load_recipe
from memo_zoo.runner import run_recipe
from tests.e2e.cli_helpers import memo_zoo
from tests.support_plugins import registry_with_test_tasks

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'store.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start:\n" + (root / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server's own worker processes too
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def test_cli_sweep_logs_parent_and_nested_runs_to_the_server(tmp_path, server, repo_root):
    recipe = tmp_path / "sweep.yaml"
    recipe.write_text(
        f"include: {repo_root / 'recipes' / 'smoke.yaml'}\n"
        "name: server-sweep\n"
        "tracking: {experiment: server-test}\n"
        "sweep:\n  few_steps: {scheduler.steps: 2}\n  many_steps: {scheduler.steps: 50}\n")
    out = memo_zoo("run", str(recipe), cwd=tmp_path, env={"MEMO_ZOO_TRACKING_URI": server})
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "mlflow.db").exists(), "the env URI must win over the embedded default"
    client = MlflowClient(tracking_uri=server)
    experiment = client.get_experiment_by_name("server-test")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = {r.data.tags["memo_zoo.variant"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"few_steps", "many_steps"}
    assert children["few_steps"].data.params["scheduler.steps"] == "2"
    assert children["many_steps"].data.params["scheduler.steps"] == "50"
    assert all(r.info.status == "FINISHED" for r in runs)
    assert "recipe.yaml" in {a.path for a in client.list_artifacts(children["few_steps"].info.run_id)}
    recipe_text = client.download_artifacts(children["few_steps"].info.run_id, "recipe.yaml", str(tmp_path))
    assert "steps: 2" in Path(recipe_text).read_text()


@pytest.mark.parametrize("error, exception", [("value", ValueError), ("interrupt", KeyboardInterrupt)])
def test_failing_runs_are_marked_failed_on_the_server(tmp_path, server, error, exception):
    registry = registry_with_test_tasks()
    recipe = tmp_path / "boom.yaml"
    recipe.write_text(f"name: boom\ntask: {{kind: explode, error: {error}}}\n"
                      f"tracking: {{uri: '{server}', experiment: failures}}\n")
    started: list[str] = []
    with pytest.raises(exception):
        run_recipe(load_recipe(recipe, registry), registry, workdir=tmp_path, on_start=started.append)
    run = MlflowClient(tracking_uri=server).get_run(started[0])
    assert run.info.status == "FAILED"
    assert exception.__name__ in run.data.tags["error"]


def test_ctrl_c_on_the_cli_marks_the_run_failed(tmp_path, server, repo_root):
    """A real SIGINT to `memo-zoo run` while its task works: run FAILED, exit code 130."""
    site = tmp_path / "site"
    site.mkdir()
    from tests.fake_plugins import write_plugin_dist

    write_plugin_dist(site, "sleepy", """
        import time
        from pydantic import BaseModel, ConfigDict
        from memo_zoo.plugin import ComponentSpec, hookimpl
        class Cfg(BaseModel):
            model_config = ConfigDict(extra="forbid")
        class Sleep:
            def __init__(self, cfg): pass
            def run(self, context):
                print("task started", flush=True)
                time.sleep(120)
        @hookimpl
        def task_components():
            return [ComponentSpec("sleep", Cfg, Sleep, "sleeps")]
    """)
    (tmp_path / "sleep.yaml").write_text("name: sleepy\ntask: {kind: sleep}\ntracking: {experiment: interrupted}\n")
    env = {**os.environ, "PYTHONPATH": str(site), "MEMO_ZOO_TRACKING_URI": server}
    # A shell without job control starts background jobs with SIGINT ignored, and Python keeps an
    # ignored SIGINT ignored: reset it, so that the test does not depend on how pytest was launched.
    process = subprocess.Popen([sys.executable, "-m", "memo_zoo", "run", "sleep.yaml"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdout.readline().strip() == "task started"
    process.send_signal(signal.SIGINT)
    # Marking the run FAILED is an HTTP call, which MLflow's client retries with backoff when the
    # server is slow (seen once under a loaded CI machine): allow for that.
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 130, stderr
    client = MlflowClient(tracking_uri=server)
    experiment = client.get_experiment_by_name("interrupted")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "KeyboardInterrupt"
