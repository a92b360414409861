"""``StepLoop`` (memo_zoo.train.step_loop), the loop every trainer shares: the bar's totals, the
resume step, periodic checkpoints, and a stop signal taken at the step boundary."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from memo_zoo.signals import Terminated
from memo_zoo.train.step_loop import StepLoop


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # delivered to the main thread before os.kill returns


class _Saves:
    """A save callback that records (step, collective) and returns a name like a checkpoint's."""

    def __init__(self) -> None:
        self.loop: StepLoop | None = None
        self.calls: list[tuple[int, bool]] = []

    def __call__(self, collective: bool) -> str:
        self.calls.append((self.loop.step, collective))
        return f"checkpoint-{self.loop.step}"


def _loop(total: int, saves: _Saves | None = None, **options) -> StepLoop:
    loop = StepLoop(total, "test", save=saves, **options)
    if saves is not None:
        saves.loop = loop
    return loop


def test_the_bar_counts_units_per_step_from_the_resumed_step(monkeypatch, capsys):
    monkeypatch.setenv("MEMO_ZOO_PROGRESS", "1")
    seen = []
    with _loop(5, start=2, unit="sample", per_step=4) as loop:
        for step in loop:
            seen.append(step)
            with loop.update():
                pass
            loop.set_postfix(loss="0.1234")
    assert seen == [2, 3, 4]
    assert loop.step == 5
    err = capsys.readouterr().err
    assert "20/20" in err and "sample/s" in err and "loss=0.1234" in err


def test_the_bar_is_quiet_when_progress_is_off(monkeypatch, capsys):
    monkeypatch.setenv("MEMO_ZOO_PROGRESS", "0")
    with _loop(3) as loop:
        for _ in loop:
            loop.advance()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("start, saved", [(0, [(3, True), (6, True), (7, True)]), (4, [(6, True), (7, True)])])
def test_checkpoints_every_n_steps_and_at_the_end(start, saved):
    saves = _Saves()
    with _loop(7, saves, start=start, checkpoint_every=3) as loop:
        for _ in loop:
            loop.advance()
    assert saves.calls == saved
    assert loop.checkpoint == "checkpoint-7"


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_inside_a_step_finishes_it_saves_once_and_raises(signum, raised, capsys):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    saves, completed = _Saves(), []
    with pytest.raises(raised):
        with _loop(10, saves, checkpoint_every=100) as loop:
            for step in loop:
                if step == 2:
                    _send(signum)
                with loop.update():
                    completed.append(step)  # the step goes on after the signal
    assert completed == [0, 1, 2]
    assert saves.calls == [(3, True)]  # the boundary's save; none again on the way out
    assert "stopping after this step" in capsys.readouterr().err
    assert {sig: signal.getsignal(sig) for sig in before} == before  # handlers restored


def test_a_second_signal_inside_the_update_waits_for_it_and_saves_that_step():
    saves = _Saves()
    with pytest.raises(KeyboardInterrupt):
        with _loop(10, saves) as loop:
            for step in loop:
                with loop.update():
                    if step == 1:
                        _send(signal.SIGINT)
                        _send(signal.SIGINT)
    assert loop.step == 2
    assert saves.calls == [(2, False)]  # no collectives: other ranks may be gone


def test_a_second_signal_outside_the_update_stops_at_once():
    saves = _Saves()
    with pytest.raises(KeyboardInterrupt):
        with _loop(10, saves) as loop:
            for step in loop:
                if step == 1:
                    _send(signal.SIGINT)
                    _send(signal.SIGINT)
                with loop.update():
                    pass
    assert loop.step == 1
    assert saves.calls == [(1, False)]


def test_a_stop_before_the_first_step_saves_nothing(capsys):
    saves = _Saves()
    with pytest.raises(KeyboardInterrupt):
        with _loop(10, saves, start=4) as loop:
            _send(signal.SIGINT)  # e.g. while the data were prepared
            for _ in loop:
                loop.advance()
    assert loop.step == 4 and saves.calls == []


def test_a_loop_that_does_not_save_stops_quietly(capsys):
    completed = []
    with pytest.raises(KeyboardInterrupt):
        with _loop(10) as loop:
            for step in loop:
                if step == 1:
                    _send(signal.SIGINT)
                completed.append(step)
                loop.advance()
    assert completed == [0, 1]
    assert "stopping" not in capsys.readouterr().err  # no checkpoint to promise


class _Ranks:
    """A stop policy as the MEMO trainer passes it: installed by the caller, agreed across ranks."""

    def __init__(self, stop_at: int):
        self.stop_at, self.agreements, self.loop = stop_at, [], None

    def agreed(self, world, device):
        self.agreements.append((self.loop.step, world, device))
        return signal.SIGTERM if self.loop.step == self.stop_at else 0

    def critical(self):
        return contextlib.nullcontext()


def test_a_given_stop_policy_is_asked_at_every_boundary_and_left_installed():
    ranks, saves = _Ranks(stop_at=2), _Saves()
    handler = signal.getsignal(signal.SIGINT)
    loop = StepLoop(5, "test", stop=ranks, world=2, device="cpu", save=saves)
    ranks.loop = saves.loop = loop
    with pytest.raises(Terminated):
        with loop:
            assert signal.getsignal(signal.SIGINT) is handler  # the caller's to install
            for _ in loop:
                with loop.update():
                    pass
    assert ranks.agreements == [(0, 2, "cpu"), (1, 2, "cpu"), (2, 2, "cpu")]
    assert saves.calls == [(2, True)]


def test_a_step_that_does_not_count_is_an_error():
    with pytest.raises(RuntimeError, match="without loop.update"):
        with _loop(3) as loop:
            for _ in loop:
                pass
