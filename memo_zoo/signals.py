"""How memo-zoo tells Ctrl-C from a scheduler's stop, and the exit codes that say which.

Ctrl-C (SIGINT) raises ``KeyboardInterrupt``; SIGTERM (what SLURM, Kubernetes and ``timeout`` send)
raises ``Terminated``, a ``KeyboardInterrupt`` too, so every ``except KeyboardInterrupt`` cleanup
(MLflow runs closed FAILED, the exit checkpoint) runs for both. The command then exits 130 or 143,
the shell's codes for death by SIGINT / SIGTERM (128 + signal number), so a batch script can tell
a user's Ctrl-C from a pre-emption and requeue only the latter.
"""

from __future__ import annotations

import signal

INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT  # 130
TERMINATED_EXIT_CODE = 128 + signal.SIGTERM  # 143
INTERRUPT_EXIT_CODES = (INTERRUPTED_EXIT_CODE, TERMINATED_EXIT_CODE)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as Ctrl-C stops, but exit with 143."""


def interrupt_for(signum: int) -> KeyboardInterrupt:
    """The exception a stop by ``signum`` raises."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def exit_code_for(interrupt: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return TERMINATED_EXIT_CODE if isinstance(interrupt, Terminated) else INTERRUPTED_EXIT_CODE


def signal_for_exit_code(code: int) -> int:
    """The signal a rank's interrupt exit code stands for (SIGINT for 130, SIGTERM for 143)."""
    return signal.SIGTERM if code == TERMINATED_EXIT_CODE else signal.SIGINT


def raise_terminated(signum: int, frame: object) -> None:
    """A SIGTERM handler: raise ``Terminated`` where the main thread is."""
    raise Terminated()
