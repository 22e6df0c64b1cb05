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
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def time_limit(seconds: float | None, expired: Callable[[], BaseException]) -> Iterator[None]:
    """Raise ``expired()`` in the block after ``seconds``.

    No limit with ``None``, outside the main thread (signals are delivered there only) or
    without ``setitimer``; a limit already spent (``seconds <= 0``) raises at once.
    """
    if seconds is None or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    if seconds <= 0:
        raise expired()

    def on_alarm(signum: int, frame: Any) -> None:
        raise expired()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
