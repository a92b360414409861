"""SIGTERM ends a command the way Ctrl-C does.

Batch schedulers (SLURM, Kubernetes, `timeout`) stop a job with SIGTERM, and Python's default
for it is to die on the spot: MLflow runs stay RUNNING forever and no last checkpoint is
written. Raising ``KeyboardInterrupt`` instead sends it down the path Ctrl-C takes: open runs
are closed as FAILED (``memo_zoo.tracking``), training writes its checkpoint at exit
(``memo_zoo.train.loop``), and the command exits with code 130.
"""

from __future__ import annotations

import signal
import threading


def terminate_as_interrupt() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread (a no-op elsewhere: signals can only
    be handled there)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
