"""The retry and blame policy shared by every backend: when to try a batch again, when to
give up on it, and which batch to charge when a worker process dies.

Kept apart from the backends so that it can be read (and reasoned about) in one place:

- a failed attempt is retried while ``attempt <= retries``; the errors of the earlier
  attempts go into the final outcome's warnings, whether it then succeeds or not;
- when a pool breaks (a worker died), the batch that worker was running is charged one
  attempt; batches merely in flight beside it are resubmitted without charge. The dead
  worker is known from the exit codes: the pool ends its other workers with SIGTERM, so
  the only abnormal exit code other than -SIGTERM is the culprit's.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from hinqs.sqd.executors.base import ExecutorReport, OutcomeCallback
from hinqs.sqd.messages import ErrorKind
from hinqs.sqd.task import BatchOutcome, BatchTask


class Attempts:
    """Retry bookkeeping: errors of earlier attempts, and what to run next."""

    def __init__(self, retries: int, on_outcome: OutcomeCallback) -> None:
        self.retries = retries
        self.on_outcome = on_outcome
        self.errors: dict[int, list[str]] = {}

    def finish(self, task: BatchTask, outcome: BatchOutcome) -> BatchTask | None:
        """Record an attempt's outcome; return the next attempt's task, or None when the batch is done."""
        if outcome.ok:
            outcome.warnings = [*outcome.warnings, *self.errors.get(task.index, [])]
            self.on_outcome(outcome)
            return None
        if task.attempt <= self.retries:
            self.errors.setdefault(task.index, []).append(f"attempt {task.attempt} failed: {outcome.error}")
            return replace(task, attempt=task.attempt + 1)
        self.give_up(outcome)
        return None

    def give_up(self, outcome: BatchOutcome) -> None:
        """Report a batch as failed for good; earlier attempts' errors go into its warnings."""
        outcome.warnings = [*outcome.warnings, *self.errors.get(outcome.index, [])]
        self.on_outcome(outcome)


@dataclass(eq=False)
class Slot:
    """A task in flight: when it was submitted and, once its worker said so, started and where."""

    task: BatchTask
    submitted: float
    started: float | None = None
    pid: int | None = None
    killed_for_timeout: bool = False


@dataclass(frozen=True)
class Blame:
    """Why a batch in flight when the pool broke is charged an attempt."""

    kind: ErrorKind
    message: str


def signal_name(exitcode: int | None) -> str:
    """``SIGKILL`` for -9, ``exit code 3`` for 3: how a process ended, for messages."""
    if exitcode is None:
        return "unknown exit"
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _abnormal(code: int | None) -> bool:
    """An exit that was neither clean nor the pool's own SIGTERM."""
    return code is not None and code != 0 and code != -signal.SIGTERM


def assign_blame(
    broken: list[Slot], exitcodes: Mapping[int, int | None], timeout: float | None, report: ExecutorReport
) -> dict[Slot, Blame]:
    """Which in-flight batches broke the pool, given every started worker's pid -> exit code.

    Called once the pool has been shut down, when every exit code is final.
    """
    charged: dict[Slot, Blame] = {}
    unknown = []
    for slot in broken:
        if slot.killed_for_timeout:
            elapsed = time.time() - (slot.started or slot.submitted)
            message = f"exceeded batch_timeout={timeout:g} s; worker {slot.pid} killed after {elapsed:.1f} s"
            charged[slot] = Blame(ErrorKind.TIMEOUT, message)
        elif slot.pid is None:
            unknown.append(slot)
        elif _abnormal(code := exitcodes.get(slot.pid)):
            charged[slot] = Blame(ErrorKind.WORKER_DIED, f"worker process {slot.pid} died ({signal_name(code)})")
    known = {s.pid for s in broken if s.pid is not None}
    deaths = [(pid, code) for pid, code in exitcodes.items() if pid not in known and _abnormal(code)]
    if len(unknown) == 1 and len(deaths) == 1:
        # One batch whose worker is unknown, one worker dead for no known batch: that is the pair.
        pid, code = deaths[0]
        charged[unknown[0]] = Blame(ErrorKind.WORKER_DIED, f"worker process {pid} died ({signal_name(code)})")
    elif not charged and unknown:
        # The dead worker's start message never arrived: blame the batches we cannot clear.
        for slot in unknown:
            charged[slot] = Blame(
                ErrorKind.WORKER_DIED, "worker process died (pool broke while this batch was running)"
            )
    for slot, blame in charged.items():
        report.events.append(f"batch {slot.task.index} attempt {slot.task.attempt}: {blame.message}")
    innocent = [s.task.index for s in broken if s not in charged]
    if innocent:
        report.events.append(f"pool rebuilt; resubmitted without charge: batches {innocent}")
    return charged
