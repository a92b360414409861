"""A stop asked for by a signal, taken by every rank at the same step boundary.

Raising at once when Ctrl-C or SIGTERM arrives (Python's default) loses work in a multi-process
run: the rank that stops first leaves the others blocked in a gradient all-reduce, the launcher
kills them, and rank 0 dies half-way through its exit checkpoint. So in training the first signal
only *asks* for a stop: each rank finishes its optimizer step, then at the step boundary the
ranks agree (an all-reduce of the signal numbers they received: one rank told is enough), write
one checkpoint together, and raise the interrupt (``KeyboardInterrupt`` or ``Terminated``), which
closes the MLflow run as FAILED and gives the exit code 130 / 143.

A second signal is the user insisting: it raises at once (outside the optimizer step, which is
never cut in half), and the trainer saves the last completed step on its own.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import torch

from memo_zoo.signals import interrupt_for

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Signal handlers for the duration of a training loop (a context manager).

    ``signum``: the first stop signal received (0: none). ``critical()`` wraps the optimizer step:
    an insisting second signal that arrives inside it is raised when the step is complete.
    """

    def __init__(self, announce: bool = True):
        self.signum = 0
        self.announce = announce
        self._previous: dict[int, Any] = {}
        self._in_critical = False
        self._pending = 0

    def __enter__(self) -> "StopRequest":
        # Handlers can only be installed from the main thread; elsewhere (a trainer embedded in a
        # worker thread) signals keep their usual meaning.
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: object) -> None:
        if not self.signum:
            self.signum = signum
            if self.announce:
                name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
                print(f"\n{name}: stopping after this step and saving a checkpoint (again to stop at once)",
                      file=sys.stderr, flush=True)
            return
        if self._in_critical:
            self._pending = signum
            return
        raise interrupt_for(signum)

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask for a stop without a signal (tests, embedding applications)."""
        self.signum = self.signum or signum

    def critical(self) -> "_Critical":
        return _Critical(self)

    def agreed(self, world: int, device: torch.device) -> int:
        """The stop signal any rank received (0 if none). With several ranks this is a collective:
        every rank must call it at the same step."""
        if world <= 1:
            return self.signum
        flag = torch.tensor([self.signum], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())


class _Critical:
    def __init__(self, stop: StopRequest):
        self.stop = stop

    def __enter__(self) -> None:
        self.stop._in_critical = True

    def __exit__(self, *exc: object) -> None:
        self.stop._in_critical = False
        pending, self.stop._pending = self.stop._pending, 0
        if pending and exc[0] is None:
            raise interrupt_for(pending)
