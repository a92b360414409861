"""Opening the tracking store (issue 16): first runs started together on a new sqlite store, and a
tracking server that is not there."""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from memo_zoo.errors import MemoZooError
from memo_zoo.recipe.loader import load_recipe
from memo_zoo.runner import run_recipe
from memo_zoo.tracking.tracker import Tracker, check_reachable, sqlite_path
from tests.e2e.cli_helpers import memo_zoo
from tests.support_plugins import registry_with_test_tasks

# Each process imports everything first, says it is ready, then waits for the "go" file, so that
# all open the new store within milliseconds of each other: without the lock, processes lost the
# schema race (duplicate column, or a table created twice) in every try.
OPEN_A_RUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 - imported before the start signal
    from memo_zoo.tracking.tracker import Tracker
    uri, folder, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    (folder / f"ready-{name}").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    tracker = Tracker(uri, "race", folder / "artifacts", folder)
    with tracker.run(name) as run:
        run.log_params({"who": name})
    print(run.id)
""")


def _closed_port() -> int:
    """A loopback port nothing listens on: bound to find a free one, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NAMES = ("first", "second", "third")


def test_first_runs_started_together_on_a_new_sqlite_store_all_finish(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_A_RUN, uri, str(tmp_path), name], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in NAMES]
    try:
        deadline = time.monotonic() + 90
        while not all((tmp_path / f"ready-{n}").exists() for n in NAMES):
            assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
            assert time.monotonic() < deadline, "the processes never got ready"
            time.sleep(0.02)
        (tmp_path / "go").touch()
        outputs = [p.communicate(timeout=120) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    run_ids = [stdout.strip().splitlines()[-1] for stdout, _ in outputs]
    client = MlflowClient(tracking_uri=uri)
    assert len(client.search_experiments(filter_string="name = 'race'")) == 1
    runs = [client.get_run(run_id) for run_id in run_ids]
    assert [r.info.status for r in runs] == ["FINISHED"] * len(NAMES)
    assert sorted(r.data.params["who"] for r in runs) == sorted(NAMES)


def test_cli_fails_at_once_naming_an_unreachable_server(tmp_path, repo_root):
    uri = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    out = memo_zoo("run", str(repo_root / "recipes" / "smoke.yaml"), cwd=tmp_path,
                   env={"MEMO_ZOO_TRACKING_URI": uri}, timeout=90)
    elapsed = time.monotonic() - started
    assert out.returncode == 2, out.stderr
    assert uri in out.stderr
    assert "Traceback" not in out.stderr
    # The process's own start (torch, mlflow imports) is most of this; MLflow's retries took 4 minutes.
    assert elapsed < 45, elapsed
    assert not (tmp_path / "mlflow.db").exists()


def test_an_unreachable_recipe_uri_fails_before_any_run(tmp_path):
    registry = registry_with_test_tasks()
    uri = f"http://127.0.0.1:{_closed_port()}"
    recipe = tmp_path / "boom.yaml"
    recipe.write_text(f"name: boom\ntask: {{kind: explode, error: value}}\ntracking: {{uri: '{uri}'}}\n")
    started = time.monotonic()
    with pytest.raises(MemoZooError, match=re.escape(uri)):
        run_recipe(load_recipe(recipe, registry), registry, workdir=tmp_path)
    assert time.monotonic() - started < 15


def test_a_server_that_never_answers_fails_after_the_probe_timeout():
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(MemoZooError, match=re.escape(uri) + ".*timed out"):
            check_reachable(uri, timeout=1)
        assert time.monotonic() - started < 10


def test_report_fails_at_once_naming_an_unreachable_server(tmp_path):
    from memo_zoo.cli.report import _run

    uri = f"http://127.0.0.1:{_closed_port()}"
    args = argparse.Namespace(run_id="0" * 32, out=tmp_path / "report", tracking_uri=uri, no_log=True)
    started = time.monotonic()
    with pytest.raises(MemoZooError, match=re.escape(uri)):
        _run(args)
    assert time.monotonic() - started < 15


def test_the_lock_sits_beside_the_database_even_in_a_new_folder(tmp_path):
    database = tmp_path / "new" / "folder" / "m.db"
    assert sqlite_path(f"sqlite:///{database}") == database
    assert sqlite_path("sqlite:///:memory:") is None and sqlite_path("http://127.0.0.1:5000") is None
    Tracker(f"sqlite:///{database}", "x", tmp_path / "artifacts", tmp_path)
    assert database.is_file() and (database.parent / "m.db.lock").is_file()
