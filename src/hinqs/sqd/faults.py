"""Fault injection: a documented test hook that makes real faults happen inside the batch task.

Set ``HINQS_FAULT_INJECT`` in the environment of the step (workers inherit it; MPI ranks
get it from ``mpiexec``). It is read by the task itself, in whichever process runs the
batch, so the real solve path runs and a real SIGKILL, segfault or exception happens:
nothing in the chemistry is replaced.

Syntax: comma-separated entries ``batch=I[@A]:ACTION[=SECONDS]``; ``I`` is a batch index or
``*`` (every batch), ``@A`` restricts the entry to attempt ``A`` (1 = first try), so a retry
can be made to succeed. Actions:

``kill[=S]``
    the process sends itself SIGKILL ``S`` seconds (default 0.2) into the solve, or just after
    it if the solve is quicker: what the out-of-memory killer does. Under the ``sequential``
    executor this kills the step itself (a step killed half-way).
``segv``
    a real segmentation fault (a read of address 0) before the solve.
``raise``
    a ``RuntimeError`` before the solve.
``nan``
    the solve runs, then its energy is replaced by NaN (the task must reject it).
``sleep=S``
    sleeps ``S`` seconds before the solve; the task's own timer can interrupt it.
``hang=S``
    blocks the timer signal, then sleeps ``S`` seconds: only the parent killing the worker
    process (``process`` executor) stops it.

Example: ``HINQS_FAULT_INJECT="batch=1:kill,batch=2:raise,batch=3@1:nan"``.
A malformed value raises ``ValueError`` in the task, which fails the batch with that message.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from dataclasses import dataclass

ENV_VAR = "HINQS_FAULT_INJECT"
ACTIONS = ("kill", "segv", "raise", "nan", "sleep", "hang")


class InjectedFault(RuntimeError):
    """The exception raised by the ``raise`` action."""


@dataclass(frozen=True)
class Fault:
    """One injected fault: which batch (None = all), which attempt (None = all), what, how long."""

    batch: int | None
    attempt: int | None
    action: str
    seconds: float | None = None

    def matches(self, index: int, attempt: int) -> bool:
        return (self.batch is None or self.batch == index) and (self.attempt is None or self.attempt == attempt)


def parse(spec: str) -> list[Fault]:
    """Parse a ``HINQS_FAULT_INJECT`` value."""
    faults = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        try:
            target, action = entry.split(":", 1)
            key, _, which = target.partition("=")
            if key.strip() != "batch":
                raise ValueError
            which, _, attempt = which.partition("@")
            name, _, seconds = action.partition("=")
            name = name.strip()
            if name not in ACTIONS:
                raise ValueError
            faults.append(
                Fault(
                    batch=None if which.strip() == "*" else int(which),
                    attempt=int(attempt) if attempt else None,
                    action=name,
                    seconds=float(seconds) if seconds else None,
                )
            )
        except ValueError:
            expected = f"batch=I[@A]:ACTION[=S], ACTION one of {', '.join(ACTIONS)}"
            raise ValueError(f"{ENV_VAR}: cannot read {entry!r} (expected {expected})") from None
    return faults


def lookup(index: int, attempt: int) -> Fault | None:
    """The fault injected into this batch attempt, if any (first matching entry)."""
    spec = os.environ.get(ENV_VAR, "")
    if not spec:
        return None
    for fault in parse(spec):
        if fault.matches(index, attempt):
            return fault
    return None


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class FaultRun:
    """Applies a fault around the real solve::

    with FaultRun(lookup(index, attempt)) as fault:   # raise, segv, sleep, hang, arm kill
        energy = fault.after(solve(...))              # nan
    # leaving the block (normally or not) with a kill armed: SIGKILL now
    """

    def __init__(self, fault: Fault | None) -> None:
        self.fault = fault
        self._timer: threading.Timer | None = None

    def __enter__(self) -> FaultRun:
        fault = self.fault
        if fault is None:
            return self
        if fault.action == "kill":
            self._timer = threading.Timer(fault.seconds if fault.seconds is not None else 0.2, _kill_self)
            self._timer.daemon = True
            self._timer.start()
        elif fault.action == "segv":
            ctypes.string_at(0)
        elif fault.action == "raise":
            raise InjectedFault("injected fault (HINQS_FAULT_INJECT): raise")
        elif fault.action == "sleep":
            time.sleep(fault.seconds if fault.seconds is not None else 3600.0)
        elif fault.action == "hang":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            try:
                time.sleep(fault.seconds if fault.seconds is not None else 3600.0)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
        return self

    def after(self, energy: float) -> float:
        """The energy the task will see: NaN for the ``nan`` action."""
        if self.fault is not None and self.fault.action == "nan":
            return float("nan")
        return energy

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:  # the batch ended before the timer: die now, never in a later batch
            _kill_self()
