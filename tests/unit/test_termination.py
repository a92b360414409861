"""SIGTERM (what schedulers send) ends a memo-zoo command like Ctrl-C: the MLflow run is closed as
FAILED rather than left RUNNING (memo_zoo.cli.termination)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from mlflow import MlflowClient

from memo_zoo.cli.termination import terminate_as_interrupt


def test_a_terminated_run_is_closed_as_failed(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from memo_zoo.cli.termination import terminate_as_interrupt
        from memo_zoo.tracking.tracker import Tracker
        terminate_as_interrupt()
        tracker = Tracker("sqlite:///{tmp_path}/mlflow.db", "term", Path("{tmp_path}/artifacts"), Path("{tmp_path}"))
        try:
            with tracker.run("job") as run:
                print(run.id, flush=True)
                os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            sys.exit(130)
    """)
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 130, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id)
    assert run.info.status == "FAILED"


def test_the_handler_raises_keyboard_interrupt_and_can_be_restored():
    previous = signal.getsignal(signal.SIGTERM)
    try:
        terminate_as_interrupt()
        assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
