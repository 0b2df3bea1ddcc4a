"""The demo's waits: done when the check holds, a one-line error when time runs out or the process ends."""

from __future__ import annotations

import itertools

import pytest

from spawner.demo.control import hub_answers, wait_for
from spawner.demo.state import DemoError


def test_wait_for_returns_once_the_check_holds() -> None:
    calls = itertools.count(1)
    wait_for(lambda: next(calls) >= 3, 10.0, "three calls", alive=lambda: True)
    assert next(calls) == 4


@pytest.mark.parametrize(
    ("alive", "timeout", "message"),
    [
        (True, 0.2, "the hub did not come up: not within 0.2 s"),
        (False, 10.0, "the hub did not come up: the process ended"),
    ],
)
def test_wait_for_gives_up(alive: bool, timeout: float, message: str) -> None:
    with pytest.raises(DemoError, match=message):
        wait_for(lambda: False, timeout, "the hub did not come up", alive=lambda: alive)


def test_no_hub_does_not_answer() -> None:
    assert not hub_answers("http://127.0.0.1:9/")  # the discard port: nothing listens
