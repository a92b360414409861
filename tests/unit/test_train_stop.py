"""``StopRequest`` (memo_zoo.train.stop): the first signal asks for a stop at the next step
boundary, a second one stops at once, but never inside the optimizer step."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from memo_zoo.signals import Terminated
from memo_zoo.train.stop import StopRequest


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # delivered to the main thread before os.kill returns


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_only_asks_and_a_second_one_raises(first):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopRequest(announce=False) as stop:
        _send(first)
        assert stop.signum == first
        assert stop.agreed(world=1, device=torch.device("cpu")) == first
        with pytest.raises(KeyboardInterrupt) as raised:
            _send(signal.SIGTERM)
        assert isinstance(raised.value, Terminated)
    assert {sig: signal.getsignal(sig) for sig in before} == before  # handlers restored


def test_an_insisting_signal_inside_the_optimizer_step_waits_for_its_end():
    finished = []
    with StopRequest(announce=False) as stop:
        _send(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            with stop.critical():
                _send(signal.SIGINT)
                finished.append("step")  # still runs: the update is never cut in half
        assert finished == ["step"]


def test_the_stop_is_announced_once(capsys):
    with StopRequest() as stop:
        _send(signal.SIGTERM)
        stop.request()
    assert capsys.readouterr().err.count("stopping after this step") == 1
    assert stop.signum == signal.SIGTERM
