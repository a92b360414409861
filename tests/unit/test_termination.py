"""SIGTERM (what schedulers send) ends a memo-zoo command like Ctrl-C: the MLflow run is closed as
FAILED rather than left RUNNING (memo_zoo.cli.termination), and the command exits 143, not 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from mlflow import MlflowClient

import pytest

from memo_zoo.cli.termination import terminate_as_interrupt
from memo_zoo.signals import Terminated, exit_code_for, interrupt_for, raise_terminated


def test_a_terminated_run_is_closed_as_failed(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from memo_zoo.cli.termination import terminate_as_interrupt
        from memo_zoo.tracking.tracker import Tracker
        from memo_zoo.signals import Terminated
        terminate_as_interrupt()
        tracker = Tracker("sqlite:///{tmp_path}/mlflow.db", "term", Path("{tmp_path}/artifacts"), Path("{tmp_path}"))
        try:
            with tracker.run("job") as run:
                print(run.id, flush=True)
                os.kill(os.getpid(), signal.SIGTERM)
        except Terminated:
            sys.exit(143)
    """)
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 143, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["error"] == "Terminated"


def test_the_handler_raises_keyboard_interrupt_and_can_be_restored():
    previous = signal.getsignal(signal.SIGTERM)
    try:
        terminate_as_interrupt()
        assert signal.getsignal(signal.SIGTERM) is raise_terminated
        with pytest.raises(Terminated):
            raise_terminated(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_and_ctrl_c_have_the_shells_exit_codes():
    assert isinstance(interrupt_for(signal.SIGTERM), Terminated)
    assert isinstance(interrupt_for(signal.SIGTERM), KeyboardInterrupt)  # every Ctrl-C cleanup runs for it
    assert not isinstance(interrupt_for(signal.SIGINT), Terminated)
    assert exit_code_for(interrupt_for(signal.SIGTERM)) == 128 + signal.SIGTERM == 143
    assert exit_code_for(KeyboardInterrupt()) == 128 + signal.SIGINT == 130
