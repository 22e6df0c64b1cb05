"""The wall-clock limit leaves the process's outer timer alone: real ITIMER_REAL timers, real SIGALRM."""

from __future__ import annotations

import signal
import time

import pytest

from hinqs.deadline import time_limit


class Expired(Exception):
    pass


class OuterFired(Exception):
    pass


@pytest.fixture
def outer_timer():
    """An outer timer as pytest-timeout or a caller sets it: a handler and ITIMER_REAL; both put back after."""
    calls: list[float] = []
    saved_handler = signal.getsignal(signal.SIGALRM)
    saved_timer = signal.getitimer(signal.ITIMER_REAL)

    def arm(seconds: float, raising: bool = False) -> None:
        def handler(signum, frame):
            calls.append(time.monotonic())
            if raising:
                raise OuterFired

        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, seconds)

    yield arm, calls
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, saved_handler)
    if saved_timer[0] > 0:
        signal.setitimer(signal.ITIMER_REAL, *saved_timer)


def test_the_outer_timer_is_still_armed_after_the_block(outer_timer):
    arm, calls = outer_timer
    arm(100.0)
    handler = signal.getsignal(signal.SIGALRM)
    with time_limit(5.0, Expired):
        time.sleep(0.05)
    left, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 99.0 < left <= 100.0  # was 0: the limit cancelled the outer timer
    assert signal.getsignal(signal.SIGALRM) is handler and not calls


def test_the_limit_fires_and_the_outer_timer_survives(outer_timer):
    arm, calls = outer_timer
    arm(100.0)
    start = time.monotonic()
    with pytest.raises(Expired), time_limit(0.2, Expired):
        time.sleep(5)
    assert time.monotonic() - start < 2
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 95.0 and not calls


def test_an_outer_timer_due_inside_the_block_fires_there(outer_timer):
    """A test timeout shorter than a batch's limit still ends the test, with its own handler."""
    arm, calls = outer_timer
    arm(0.2, raising=True)
    start = time.monotonic()
    with pytest.raises(OuterFired), time_limit(30.0, Expired):
        time.sleep(5)
    assert time.monotonic() - start < 2 and len(calls) == 1
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0  # fired once, not re-armed


def test_an_outer_timer_due_inside_the_block_without_raising_lets_the_limit_run(outer_timer):
    arm, calls = outer_timer
    arm(0.1)
    with pytest.raises(Expired), time_limit(0.4, Expired):
        time.sleep(5)
    assert len(calls) == 1


def test_an_outer_timer_due_while_blocked_is_not_lost(outer_timer):
    """A timer due while the block ran with SIGALRM blocked (as in a long C call) fires once it is unblocked."""
    arm, calls = outer_timer
    arm(0.1)
    with time_limit(30.0, Expired):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(0.3)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
    time.sleep(0.05)
    assert len(calls) == 1
