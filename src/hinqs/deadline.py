"""A wall-clock limit on a block of Python code: one SIGALRM timer, shared by every step that needs one.

A batch's ``parallel.batch_timeout`` (:mod:`hinqs.sqd.task`) and the selected-CI reference's
``references.sci_max_seconds`` (:mod:`hinqs.chem.references`) both stop a PySCF call that
would run too long. A signal is delivered between Python bytecodes, so a long C call is
interrupted when it next returns to Python; that is enough for PySCF's Davidson and
selected-CI loops, which return to Python every cycle.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

Handler = Callable[[int, Any], Any] | int | signal.Handlers | None


class _Timers:
    """This limit and the process's outer ``ITIMER_REAL`` (pytest-timeout's, a caller's), on the
    one real timer: it is armed for whichever is due first, and the outer one gets its own
    handler when it is due, inside the block or after it, as if the limit were not there."""

    def __init__(self, seconds: float, expired: Callable[[], BaseException], outer: Handler) -> None:
        now = time.monotonic()
        delay, self.interval = signal.getitimer(signal.ITIMER_REAL)
        self.deadline = now + seconds
        self.outer_due: float | None = now + delay if delay > 0 else None
        self.expired, self.outer = expired, outer

    def arm(self) -> None:
        """Arm the real timer for whichever deadline comes first."""
        due = self.deadline if self.outer_due is None else min(self.deadline, self.outer_due)
        signal.setitimer(signal.ITIMER_REAL, max(due - time.monotonic(), 1e-6))

    def on_alarm(self, signum: int, frame: Any) -> None:
        """SIGALRM in the block: this limit expired, or the outer timer is due (its handler runs)."""
        now = time.monotonic()
        if self.outer_due is None or (self.deadline <= self.outer_due and now >= self.deadline):
            raise self.expired()
        if now < self.outer_due:  # woken early (clock granularity): sleep on
            self.arm()
            return
        self.outer_due = self.outer_due + self.interval if self.interval > 0 else None
        self.arm()
        _call_outer(self.outer, signum, frame)

    def restore(self) -> None:
        """Put the outer timer back with what is left of it (fired at once if already due)."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self.outer_due is not None:
            left = max(self.outer_due - time.monotonic(), 1e-6)
            signal.setitimer(signal.ITIMER_REAL, left, self.interval)


def _call_outer(handler: Handler, signum: int, frame: Any) -> None:
    """What SIGALRM would have done without the limit: the outer handler, or the default action."""
    if callable(handler):
        handler(signum, frame)
    elif handler in (signal.SIG_DFL, None):
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGALRM)  # the default action: the process ends, as it would have


@contextlib.contextmanager
def time_limit(seconds: float | None, expired: Callable[[], BaseException]) -> Iterator[None]:
    """Raise ``expired()`` in the block after ``seconds``.

    No limit with ``None``, outside the main thread (signals are delivered there only) or
    without ``setitimer``; a limit already spent (``seconds <= 0``) raises at once. An outer
    ``ITIMER_REAL`` and its handler are left as they were: restored on exit with the time
    they had left, and fired in the block if they fall due there (a test's timeout must
    still end a test that hangs inside a batch).
    """
    if seconds is None or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    if seconds <= 0:
        raise expired()
    previous = signal.getsignal(signal.SIGALRM)
    timers = _Timers(seconds, expired, previous)
    signal.signal(signal.SIGALRM, timers.on_alarm)
    timers.arm()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        timers.restore()
