"""What every training loop shares: the step count, the progress bar, stop signals taken at step
boundaries, and periodic checkpoints.

The four trainers (the MEMO network in ``memo_zoo.train.loop``, the autoencoder, the emotion head,
the world measurer) keep their own step bodies, so their numerics stay theirs; the loop around the
body is this one::

    with StepLoop(total=steps, desc="train x", save=save, checkpoint_every=100) as loop:
        for step in loop:                 # the 0-based index of the step about to run
            loss = ...; loss.backward()
            with loop.update():           # the optimizer step; the step counts when it is complete
                optimizer.step()
            loop.set_postfix(loss=f"{loss:.4f}")
    checkpoint = loop.checkpoint          # what the final save returned

A loop whose unit is not one optimizer step (an epoch) calls ``loop.advance()`` at its end instead.

Signals (``memo_zoo.train.stop``): the first Ctrl-C or SIGTERM only asks for a stop; at the next
step boundary the loop saves (when the trainer saves and has trained a step in this run) and
raises ``KeyboardInterrupt`` / ``Terminated``, so the MLflow run ends FAILED and the command exits
130 / 143. A second signal raises at once, outside ``update()``; leaving the ``with`` block on
that interrupt saves the last completed step, with no collectives (other ranks may be gone).
A trainer that must decide with other ranks passes its own ``StopRequest`` and the process count:
``stop.agreed`` is then a collective that every rank reaches at the same boundary.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

from memo_zoo.signals import interrupt_for
from memo_zoo.train.stop import StopRequest

# memo_zoo.progress's switch and format, plus the postfix (loss and the like).
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}"


class StepLoop:
    """Steps ``start`` .. ``total - 1`` of one training run (a context manager; iterate it inside).

    ``unit`` / ``per_step``: the bar counts ``per_step`` units per step (the MEMO trainer counts
    samples, so its rate reads in samples/s). ``show``: draw the bar (off on non-main ranks, and
    everywhere when MEMO_ZOO_PROGRESS=0).
    ``stop``: a ``StopRequest`` the caller installed (and leaves); without one the loop installs
    its own for its duration. ``world`` / ``device``: the process count and device that
    ``stop.agreed`` needs to agree across ranks.
    ``save(collective)``: writes a checkpoint of the completed steps and returns it; called every
    ``checkpoint_every`` steps (0: never) before the last, at the end, and when stopped.
    """

    def __init__(self, total: int, desc: str, *, start: int = 0, unit: str = "step", per_step: int = 1,
                 show: bool = True, stop: StopRequest | None = None, world: int = 1, device: Any = None,
                 save: Callable[[bool], Any] | None = None, checkpoint_every: int = 0):
        self.total, self.start, self.step = total, start, start
        self.checkpoint: Any = None
        self._desc, self._unit, self._per_step, self._show = desc, unit, per_step, show
        self._own_stop = stop is None
        # Announce only where the first signal leads to a save: elsewhere the step ends quietly soon.
        self._stop = StopRequest(announce=show and save is not None) if stop is None else stop
        self._world, self._device = world, device
        self._save, self._every = save, checkpoint_every
        self._stopped_together = False
        self._bar: Any = None

    def __enter__(self) -> "StepLoop":
        if self._own_stop:
            self._stop.__enter__()
        self._bar = tqdm(total=self.total * self._per_step, initial=self.start * self._per_step, unit=self._unit,
                         desc=self._desc, dynamic_ncols=True, bar_format=BAR_FORMAT,
                         disable=not self._show or os.environ.get("MEMO_ZOO_PROGRESS", "1") == "0")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> None:
        try:
            stopped_alone = kind is not None and issubclass(kind, KeyboardInterrupt) and not self._stopped_together
            if stopped_alone and self._save is not None and self.step > self.start:
                self._save(False)
        finally:
            self._bar.close()
            if self._own_stop:
                self._stop.__exit__(kind, error, trace)

    def __iter__(self) -> Iterator[int]:
        while self.step < self.total:
            self._stop_if_asked()
            before = self.step
            yield self.step
            if self.step == before:
                # A step body that forgot to count would run forever.
                raise RuntimeError("a training step ended without loop.update() or loop.advance()")
            if self._every and self.step % self._every == 0 and self.step < self.total:
                self._save(True)
        if self._save is not None:
            self.checkpoint = self._save(True)

    def _stop_if_asked(self) -> None:
        signum = self._stop.agreed(self._world, self._device)  # a collective when world > 1
        if signum:
            if self._save is not None and self.step > self.start:
                self._save(True)
            self._stopped_together = True
            raise interrupt_for(signum)

    @contextlib.contextmanager
    def update(self) -> Iterator[None]:
        """The optimizer step: a second signal waits until it is complete (a checkpoint never holds
        half an update), and the step counts as done before that interrupt is raised."""
        with self._stop.critical():
            yield
            self.advance()

    def advance(self) -> None:
        """Count one step as done and move the bar."""
        self.step += 1
        self._bar.update(self._per_step)

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the rate (loss, ...), drawn at the bar's next refresh."""
        self._bar.set_postfix(refresh=False, **values)
