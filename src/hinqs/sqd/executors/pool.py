"""The loop shared by the pool backends (``process`` and ``mpi``): submit, collect, recover.

At most ``capacity`` tasks are in flight, so a submitted task starts at once. A finished
task goes through the retry policy (:mod:`hinqs.sqd.executors.policy`). A broken pool
(a worker died) fails every in-flight future: the pool is shut down, the batch to blame
is charged an attempt, the others are resubmitted, and the pool is started again. A pool
that fails to start is torn down and started again the same way (never left in place for
later batches). No wait outlasts ``timeout + kill_grace``: a batch past it has its worker
killed where the backend can (``process``), else it fails as timed out and its worker is
left to finish, unused (``mpi``). A backend supplies the pool itself through the hooks of
:class:`FuturePoolExecutor`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from dataclasses import dataclass, field, replace
from typing import Any

from hinqs.sqd.executors.base import ExecutorReport, OutcomeCallback
from hinqs.sqd.executors.policy import Attempts, Slot, assign_blame
from hinqs.sqd.messages import ErrorKind
from hinqs.sqd.task import BatchOutcome, BatchTask, failed_outcome, run_task

MAX_FRUITLESS_RESTARTS = 3
"""Pool rebuilds in a row with no batch to blame before the remaining batches are failed."""


@dataclass
class _Run:
    """The state of one ``run`` call."""

    pending: deque[BatchTask]
    attempts: Attempts
    report: ExecutorReport
    solver: str | None
    size: int
    inflight: dict[Future, Slot] = field(default_factory=dict)
    fruitless_restarts: int = 0

    def requeue(self, task: BatchTask | None) -> None:
        if task is not None:
            self.pending.append(task)

    def fail_all(self, reason: str) -> None:
        while self.pending:
            task = self.pending.popleft()
            self.attempts.give_up(failed_outcome(task, ErrorKind.WORKER_DIED, reason))


class FuturePoolExecutor:
    """The loop shared by the ``process`` and ``mpi`` executors (pool-specific parts are hooks)."""

    name = "pool"
    can_kill = False

    def __init__(
        self, workers: int, threads: int, retries: int = 0, timeout: float | None = None, *, kill_grace: float
    ) -> None:
        self.workers = workers
        self.threads = threads
        self.retries = retries
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.pool: Any = None
        self.capacity = 0
        self._persistent = False
        self._stuck: set[Future] = set()  # abandoned tasks whose worker has not returned yet

    def __enter__(self) -> FuturePoolExecutor:
        self._persistent = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._persistent = False
        self._stop_pool(kill=True)

    # -- hooks -------------------------------------------------------------------------
    def _start_pool(self, report: ExecutorReport, solver: str | None, size: int) -> int:
        """Start ``size`` workers preloading ``solver``'s modules; return how many tasks may run at once."""
        raise NotImplementedError

    def _stop_pool(self, kill: bool) -> None:
        """Stop the pool; ``kill`` ends its processes first instead of waiting for running tasks."""
        raise NotImplementedError

    def _drain_starts(self, slots: Iterable[Slot]) -> None:
        """Record which process started which task, and when (where the pool can tell)."""

    def _exitcodes(self) -> dict[int, int | None]:
        """pid -> exit code (None while alive) of every worker started (where the pool can tell)."""
        return {}

    # -- the loop ----------------------------------------------------------------------
    def run(self, tasks: Sequence[BatchTask], on_outcome: OutcomeCallback) -> ExecutorReport:
        report = ExecutorReport(self.name, self.workers, self.threads)
        if not tasks:
            return report
        # A pool for this run alone needs no more workers than there are batches.
        size = self.workers if self._persistent else min(self.workers, len(tasks))
        pending = deque(replace(t, threads=self.threads, timeout=self.timeout) for t in tasks)
        run = _Run(pending, Attempts(self.retries, on_outcome), report, tasks[0].solver.solver, size)
        try:
            if self.pool is not None or self._start_or_give_up(run):
                self._loop(run)
        finally:
            # Idle workers are ended rather than waited for; a kept pool stays unless work is stranded.
            if run.inflight or self._stuck or not self._persistent:
                self._stop_pool(kill=True)
                self._stuck.clear()
        return report

    def _loop(self, run: _Run) -> None:
        """Submit, collect and recover until every batch has its final outcome."""
        while run.pending or run.inflight:
            if not self._submit_ready(run) and not run.inflight:
                if not self._restart_unblamed(run):
                    return
                continue  # the new pool takes the batches
            if not run.inflight:  # every worker is stuck in an abandoned batch
                run.fail_all("no worker left: every worker is stuck in a batch past batch_timeout")
                return
            broken = self._collect(run)
            if not broken:
                self._enforce_timeouts(run, run.report)
            elif not self._recover(run, broken):
                return

    def _start_or_give_up(self, run: _Run) -> bool:
        """Start the pool; False (every pending batch failed with the reason) when it cannot.

        A start that fails (a worker that dies or raises in its initializer, a spawn that
        fails) is torn down, so that no broken pool is left for this run or, in a kept pool,
        for every later one, and started again, up to ``MAX_FRUITLESS_RESTARTS`` more times:
        the pending batches then run as after a crashed worker's restart.
        """
        error: BaseException | None = None
        self._stuck.clear()  # a new pool: the old one's abandoned tasks hold none of its workers
        for attempt in range(1, MAX_FRUITLESS_RESTARTS + 2):
            try:
                self.capacity = self._start_pool(run.report, run.solver, run.size)
                return True
            # OSError: a process that could not be spawned; ValueError: multiprocessing's spawn
            # refusing the descriptors of a pool whose first worker just died ("bad value(s) in
            # fds_to_keep", seen once in 16 starts with a failing worker launcher)
            except (BrokenExecutor, OSError, ValueError) as exc:
                error = exc
                run.report.events.append(f"pool failed to start (try {attempt}): {type(exc).__name__}: {exc}")
                self._stop_pool(kill=True)
        run.fail_all(f"worker pool failed to start {MAX_FRUITLESS_RESTARTS + 1} times: {type(error).__name__}: {error}")
        return False

    def _submit_ready(self, run: _Run) -> bool:
        """Submit while workers are free; False when the pool broke before it took a task (a
        worker that died while the pool was starting can break it after the start returned):
        the task goes back to the front, uncharged."""
        while run.pending and len(run.inflight) < self._free_capacity():
            task = run.pending.popleft()
            try:
                future = self.pool.submit(run_task, task)
            except BrokenExecutor:
                run.pending.appendleft(task)
                return False
            run.inflight[future] = Slot(task, time.time())
        return True

    def _restart_unblamed(self, run: _Run) -> bool:
        """Tear down a pool that broke with nothing in flight and start it again (as a failed
        start); False (the rest failed) after ``MAX_FRUITLESS_RESTARTS`` such rebuilds in a row."""
        run.fruitless_restarts += 1
        run.report.events.append(f"pool failed to start (try {run.fruitless_restarts}): it broke before taking a batch")
        self._stop_pool(kill=True)
        if run.fruitless_restarts > MAX_FRUITLESS_RESTARTS:
            run.fail_all("the worker pool keeps breaking with no batch to blame")
            return False
        return self._start_or_give_up(run)

    def _collect(self, run: _Run) -> list[Slot]:
        """Wait for the next finished task; settle the finished ones; return those the pool broke under."""
        done, _ = wait(list(run.inflight), timeout=self._poll_seconds(run.inflight), return_when=FIRST_COMPLETED)
        self._drain_starts(run.inflight.values())
        broken: list[Slot] = []
        for future in done:
            slot = run.inflight.pop(future)
            outcome = self._outcome(future, slot, broken)
            if outcome is not None:
                run.fruitless_restarts = 0
                run.requeue(run.attempts.finish(slot.task, outcome))
        return broken

    def _recover(self, run: _Run, broken: list[Slot]) -> bool:
        """After a worker death: settle, blame, resubmit, restart the pool. False: give up on the rest."""
        # Every other in-flight future has failed or finished too.
        wait(list(run.inflight), timeout=60)
        self._drain_starts([*run.inflight.values(), *broken])
        for future, slot in list(run.inflight.items()):
            outcome = self._outcome(future, slot, broken) if future.done() else None
            if outcome is not None:
                run.requeue(run.attempts.finish(slot.task, outcome))
            elif not future.done():
                broken.append(slot)
        run.inflight.clear()
        # Joins the pool's manager thread, which has terminated (SIGTERM) the other workers:
        # after this every exit code is final, and only the culprit's is not -SIGTERM.
        self._stop_pool(kill=False)
        charged = assign_blame(broken, self._exitcodes(), self.timeout, run.report)
        for slot in broken:
            if slot in charged:
                elapsed = time.time() - slot.started if slot.started is not None else 0.0
                blame = charged[slot]
                outcome = failed_outcome(slot.task, blame.kind, blame.message, pid=slot.pid, seconds=elapsed)
                run.requeue(run.attempts.finish(slot.task, outcome))
            else:
                run.pending.appendleft(slot.task)
        run.fruitless_restarts = 0 if charged else run.fruitless_restarts + 1
        if run.fruitless_restarts > MAX_FRUITLESS_RESTARTS:
            run.fail_all("the worker pool keeps breaking with no batch to blame")
            return False
        return not run.pending or self._start_or_give_up(run)

    @staticmethod
    def _outcome(future: Future, slot: Slot, broken: list[Slot]) -> BatchOutcome | None:
        """The outcome of a finished future, or None (slot added to ``broken``) if the pool broke under it."""
        try:
            return future.result()
        except BrokenExecutor:
            broken.append(slot)
            return None
        except Exception as exc:  # e.g. the result could not be pickled
            return failed_outcome(slot.task, ErrorKind.EXCEPTION, f"{type(exc).__name__}: {exc}", pid=slot.pid)

    def _poll_seconds(self, inflight: dict[Future, Slot]) -> float | None:
        """How long to wait for a result: at most 1 s, less when a batch's timeout + grace falls due."""
        if self.timeout is None:
            return 1.0
        now = time.time()
        deadlines = [
            (s.started if s.started is not None else s.submitted) + self.timeout + self.kill_grace - now
            for s in inflight.values()
            if not s.killed_for_timeout
        ]
        return min([1.0, *[max(d, 0.05) for d in deadlines]])

    def _enforce_timeouts(self, run: _Run, report: ExecutorReport) -> None:
        """Stop waiting for a batch past timeout + grace: its own timer did not stop it.

        Where workers can be killed (``process``) its worker is killed, which breaks the pool
        and goes through the blame path; where not (``mpi``), it is abandoned.
        """
        if self.timeout is None:
            return
        if not self.can_kill:
            self._abandon_overdue(run)
            return
        now = time.time()
        for slot in run.inflight.values():
            if slot.started is None or slot.pid is None or slot.killed_for_timeout:
                continue
            if now - slot.started > self.timeout + self.kill_grace:
                slot.killed_for_timeout = True
                report.events.append(
                    f"batch {slot.task.index}: worker {slot.pid} killed after {now - slot.started:.1f} s"
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)

    def _abandon_overdue(self, run: _Run) -> None:
        """A worker that cannot be killed (an MPI rank) and has not answered by timeout + grace:
        its batch fails with a timeout (and is retried elsewhere as the policy says), and the
        rank is counted busy until its future ends, so no wait is unbounded by the timeout."""
        assert self.timeout is not None
        now = time.time()
        for future, slot in list(run.inflight.items()):
            elapsed = now - (slot.started if slot.started is not None else slot.submitted)
            if elapsed <= self.timeout + self.kill_grace:
                continue
            del run.inflight[future]
            self._stuck.add(future)
            message = (
                f"exceeded batch_timeout={self.timeout:g} s; its worker did not answer within {elapsed:.1f} s "
                "and cannot be killed: abandoned (the worker is not used again until it returns)"
            )
            run.report.events.append(f"batch {slot.task.index} attempt {slot.task.attempt}: {message}")
            outcome = failed_outcome(slot.task, ErrorKind.TIMEOUT, message, pid=slot.pid, seconds=elapsed)
            run.requeue(run.attempts.finish(slot.task, outcome))

    def _free_capacity(self) -> int:
        """Workers free for a new task: the pool's capacity less those still stuck in an abandoned one."""
        self._stuck = {f for f in self._stuck if not f.done()}
        return self.capacity - len(self._stuck)
