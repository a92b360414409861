"""What a training out_dir knows about who trains in it: a lock and the last run's record.

- ``OutDirLock``: one training at a time per out_dir. Two trainers writing checkpoints into one
  folder would prune each other's checkpoints and interleave their steps; the second one is
  refused with the first one's pid. ``flock`` is released by the kernel when its holder dies, even
  by SIGKILL, so a crashed run never leaves the folder locked.
- ``run.json``: the MLflow run that trains in the out_dir now. A run killed with SIGKILL cannot
  close its MLflow run, which then shows RUNNING for ever; the next training in the same out_dir
  (which holds the lock, so the recorded one is surely dead) closes it as KILLED and links the two
  runs with tags (``close_stale_runs``).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from memo_zoo.atomic import write_text_atomically
from memo_zoo.errors import MemoZooError

LOCK_FILE = ".train.lock"
RUN_FILE = "run.json"
STALE_STATUS = "KILLED"


class OutDirLock:
    """An exclusive, non-blocking ``flock`` on ``<out_dir>/.train.lock`` (a context manager)."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self._handle: Any = None

    def __enter__(self) -> "OutDirLock":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / LOCK_FILE
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise MemoZooError(f"{self.out_dir} is in use by another training ({holder}); wait for it to end or "
                               "choose another task.out_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def read_run_record(out_dir: Path) -> dict[str, Any]:
    """``run.json`` of an out_dir ({} when absent or unreadable: it only serves to tidy up)."""
    try:
        document = json.loads((Path(out_dir) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def write_run_record(out_dir: Path, run_id: str, experiment_id: str) -> None:
    write_text_atomically(Path(out_dir) / RUN_FILE, json.dumps(
        {"run_id": run_id, "experiment_id": experiment_id, "pid": os.getpid(), "host": socket.gethostname(),
         "started": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1) + "\n")


def close_stale_runs(client: Any, run_ids: list[str | None], current_run_id: str) -> list[str]:
    """Close every run in ``run_ids`` that the store still shows RUNNING as KILLED, tagged with the
    run that found it; returns the ids closed. Runs of another store (not found) are left alone."""
    from mlflow.entities import RunTag

    closed = []
    for run_id in dict.fromkeys(r for r in run_ids if r and r != current_run_id):
        try:
            found = client.get_run(run_id)
        except Exception:  # another tracking store, or deleted: nothing of ours to close
            continue
        if found.info.status != "RUNNING":
            continue
        client.log_batch(run_id, tags=[RunTag("memo_zoo.train.closed_by", current_run_id),
                                       RunTag("error", "the process ended without closing its run (killed); "
                                                       f"closed by run {current_run_id}")])
        client.set_terminated(run_id, STALE_STATUS)
        closed.append(run_id)
    return closed
