"""SIGTERM ends a command the way Ctrl-C does, with its own exit code.

Batch schedulers (SLURM, Kubernetes, `timeout`) stop a job with SIGTERM, and Python's default
for it is to die on the spot: MLflow runs stay RUNNING forever and no last checkpoint is
written. Raising ``memo_zoo.signals.Terminated`` (a ``KeyboardInterrupt``) instead sends it down
the path Ctrl-C takes: open runs are closed as FAILED (``memo_zoo.tracking``), training writes its
checkpoint at exit (``memo_zoo.train.loop``), and the command exits with code 143 (130 for Ctrl-C).
"""

from __future__ import annotations

import signal
import threading

from memo_zoo.signals import raise_terminated


def terminate_as_interrupt() -> None:
    """Make SIGTERM raise ``Terminated`` in the main thread (a no-op elsewhere: signals can only
    be handled there)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_terminated)
