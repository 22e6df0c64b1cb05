"""Executors: where the batch tasks run, behind one interface, with retries and crash handling.

Every executor takes the first-attempt tasks and a callback, runs each task (retrying a
failed one up to ``retries`` times) and calls the callback once per batch with its final
outcome, as soon as it is known, so the caller can write it to disk right away.

``sequential``
    An in-process loop, the reference path. The timeout is the task's own timer only; a
    worker death here is the death of the step (whose finished batches are on disk).
``process``
    ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start method (``fork``
    hangs once PySCF's OpenMP threads exist), ``workers`` processes of
    ``threads_per_worker`` threads each (see :mod:`hinqs.sqd.worker`). At most ``workers``
    tasks are in flight, so a submitted task starts at once; each worker reports which
    batch it started and when, over a pipe. A dead worker (SIGKILL, segfault, out of
    memory) breaks the pool: every in-flight future fails and the pool terminates the other
    workers. The batch whose worker died is found from the exit codes (the others end by
    SIGTERM from the pool) and charged one attempt; the batches that were merely in flight
    with it are resubmitted without charge; the pool is rebuilt. A batch past its timeout
    plus ``kill_grace`` has its worker killed (SIGKILL), which goes the same way.
    Workers start with the modules of the solver preloaded, so no batch pays for imports;
    at the end the idle workers are terminated rather than waited for (their interpreter
    teardown takes about half a second and serves nothing).
``mpi``
    ``mpi4py.futures.MPIPoolExecutor``: the same task on MPI ranks, across nodes, e.g.
    ``srun -n 9 python -m mpi4py.futures -m hinqs diagonalize ... --executor mpi`` (rank 0
    runs the step, the other ranks solve; ``workers`` is then the number of ranks - 1).
    Running it outside the pool server (which would need ``MPI_Comm_spawn``) is refused.
    Exceptions, non-finite energies and timeouts fail one batch as elsewhere. MPI cannot
    survive the death of a rank: the launcher ends the job, and the rerun resumes from the
    batches already on disk.

Used as a context manager, a ``process`` or ``mpi`` executor keeps its pool between
``run`` calls (e.g. one per iteration of an in-process loop), paying the start-up once::

    with ProcessExecutor(workers=4, threads=4) as executor:
        for k in range(n_iterations):
            run_diagonalization(..., executor=executor)
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from hinqs.sqd.task import BatchOutcome, BatchTask, failed_outcome, run_task

OutcomeCallback = Callable[[BatchOutcome], None]


@dataclass
class ExecutorReport:
    """What an executor did besides solving: for result.json and the benchmark."""

    executor: str
    workers: int
    threads_per_worker: int
    pool_starts: int = 0
    pool_start_seconds: float = 0.0
    worker_info: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "executor": self.executor,
            "workers": self.workers,
            "threads_per_worker": self.threads_per_worker,
            "pool_starts": self.pool_starts,
            "pool_start_seconds": self.pool_start_seconds,
            "worker_info": self.worker_info,
            "events": self.events,
        }


class BatchExecutor(Protocol):
    """Runs batch tasks; calls ``on_outcome`` once per batch with its final outcome."""

    def run(self, tasks: Sequence[BatchTask], on_outcome: OutcomeCallback) -> ExecutorReport: ...


class _Attempts:
    """Retry bookkeeping shared by the executors: errors of earlier attempts, what to run next."""

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


class SequentialExecutor:
    """Batches one after another in this process: the reference path."""

    def __init__(self, threads: int = 1, retries: int = 0, timeout: float | None = None) -> None:
        self.threads = threads
        self.retries = retries
        self.timeout = timeout

    def run(self, tasks: Sequence[BatchTask], on_outcome: OutcomeCallback) -> ExecutorReport:
        attempts = _Attempts(self.retries, on_outcome)
        for first in tasks:
            task: BatchTask | None = replace(first, threads=self.threads, timeout=self.timeout)
            while task is not None:
                task = attempts.finish(task, run_task(task))
        return ExecutorReport("sequential", 1, self.threads)


@dataclass(eq=False)
class _Slot:
    """A task in flight."""

    task: BatchTask
    submitted: float
    started: float | None = None
    pid: int | None = None
    killed_for_timeout: bool = False


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "unknown exit"
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class _FuturePoolExecutor:
    """The loop shared by the ``process`` and ``mpi`` executors (pool-specific parts are hooks)."""

    name = "pool"
    can_kill = False

    def __init__(
        self,
        workers: int,
        threads: int,
        retries: int = 0,
        timeout: float | None = None,
        kill_grace: float = 10.0,
    ) -> None:
        self.workers = workers
        self.threads = threads
        self.retries = retries
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.pool: Any = None
        self.capacity = 0
        self._persistent = False

    def __enter__(self) -> _FuturePoolExecutor:
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

    def _drain_starts(self, slots: Iterable[_Slot]) -> None:
        """Record which process started which task, and when (where the pool can tell)."""

    def _exitcode(self, pid: int | None) -> int | None:
        return None

    def _unexplained_deaths(self, known_pids: set[int]) -> list[tuple[int, int]]:
        """(pid, exit code) of workers that died abnormally while running no known batch."""
        return []

    # -- the loop ----------------------------------------------------------------------
    def run(self, tasks: Sequence[BatchTask], on_outcome: OutcomeCallback) -> ExecutorReport:
        report = ExecutorReport(self.name, self.workers, self.threads)
        attempts = _Attempts(self.retries, on_outcome)
        pending: deque[BatchTask] = deque(replace(t, threads=self.threads, timeout=self.timeout) for t in tasks)
        if not tasks:
            return report
        solver = tasks[0].solver.solver
        # A pool for this run alone needs no more workers than there are batches.
        size = self.workers if self._persistent else min(self.workers, len(tasks))
        inflight: dict[Future, _Slot] = {}
        fruitless_restarts = 0
        try:
            if self.pool is None:
                self.capacity = self._start_pool(report, solver, size)
            while pending or inflight:
                while pending and len(inflight) < self.capacity:
                    task = pending.popleft()
                    inflight[self.pool.submit(run_task, task)] = _Slot(task, time.time())
                done, _ = wait(list(inflight), timeout=self._poll_seconds(inflight), return_when=FIRST_COMPLETED)
                self._drain_starts(inflight.values())
                broken: list[_Slot] = []
                for future in done:
                    slot = inflight.pop(future)
                    outcome = self._outcome(future, slot, broken)
                    if outcome is not None:
                        fruitless_restarts = 0
                        self._requeue(pending, attempts.finish(slot.task, outcome))
                if not broken:
                    self._enforce_timeouts(inflight, report)
                    continue
                # The pool is broken: every other in-flight future has failed or finished too.
                wait(list(inflight), timeout=60)
                self._drain_starts([*inflight.values(), *broken])
                for future, slot in list(inflight.items()):
                    outcome = self._outcome(future, slot, broken) if future.done() else None
                    if outcome is not None:
                        self._requeue(pending, attempts.finish(slot.task, outcome))
                    elif not future.done():
                        broken.append(slot)
                inflight.clear()
                # Joins the pool's manager thread, which has terminated (SIGTERM) the other workers:
                # after this every exit code is final, and only the culprit's is not -SIGTERM.
                self._stop_pool(kill=False)
                charged = self._attribute(broken, report)
                for slot in broken:
                    if slot in charged:
                        elapsed = time.time() - slot.started if slot.started is not None else 0.0
                        outcome = failed_outcome(slot.task, *charged[slot], pid=slot.pid, seconds=elapsed)
                        self._requeue(pending, attempts.finish(slot.task, outcome))
                    else:
                        pending.appendleft(slot.task)
                fruitless_restarts = 0 if charged else fruitless_restarts + 1
                if fruitless_restarts > 3:
                    self._fail_all(pending, attempts, "the worker pool keeps breaking with no batch to blame")
                    break
                if pending:
                    self.capacity = self._start_pool(report, solver, size)
        except BrokenExecutor as exc:  # the pool could not even start
            report.events.append(f"pool failed to start: {exc}")
            for slot in inflight.values():
                pending.appendleft(slot.task)
            inflight.clear()
            self._fail_all(pending, attempts, f"worker pool failed to start: {exc}")
        finally:
            # Idle workers are ended rather than waited for; a kept pool stays unless work is stranded.
            if inflight or not self._persistent:
                self._stop_pool(kill=True)
        return report

    def _outcome(self, future: Future, slot: _Slot, broken: list[_Slot]) -> BatchOutcome | None:
        """The outcome of a finished future, or None (slot added to ``broken``) if the pool broke under it."""
        try:
            return future.result()
        except BrokenExecutor:
            broken.append(slot)
            return None
        except Exception as exc:  # e.g. the result could not be pickled
            return failed_outcome(slot.task, "exception", f"{type(exc).__name__}: {exc}", pid=slot.pid)

    @staticmethod
    def _requeue(pending: deque[BatchTask], task: BatchTask | None) -> None:
        if task is not None:
            pending.append(task)

    @staticmethod
    def _fail_all(pending: deque[BatchTask], attempts: _Attempts, reason: str) -> None:
        while pending:
            task = pending.popleft()
            attempts.give_up(failed_outcome(task, "worker-died", reason))

    def _poll_seconds(self, inflight: dict[Future, _Slot]) -> float | None:
        if self.timeout is None or not self.can_kill:
            return 1.0
        now = time.time()
        deadlines = [
            (s.started if s.started is not None else s.submitted) + self.timeout + self.kill_grace - now
            for s in inflight.values()
            if not s.killed_for_timeout
        ]
        return min([1.0, *[max(d, 0.05) for d in deadlines]])

    def _enforce_timeouts(self, inflight: dict[Future, _Slot], report: ExecutorReport) -> None:
        """Kill the worker of a batch past timeout + grace: its own timer did not stop it."""
        if self.timeout is None or not self.can_kill:
            return
        now = time.time()
        for slot in inflight.values():
            if slot.started is None or slot.pid is None or slot.killed_for_timeout:
                continue
            if now - slot.started > self.timeout + self.kill_grace:
                slot.killed_for_timeout = True
                report.events.append(
                    f"batch {slot.task.index}: worker {slot.pid} killed after {now - slot.started:.1f} s"
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)

    def _attribute(self, broken: list[_Slot], report: ExecutorReport) -> dict[_Slot, tuple[str, str]]:
        """Which in-flight batches broke the pool: (error kind, message) for each one to charge."""
        charged: dict[_Slot, tuple[str, str]] = {}
        unknown = []
        for slot in broken:
            if slot.killed_for_timeout:
                elapsed = time.time() - (slot.started or slot.submitted)
                charged[slot] = (
                    "timeout",
                    f"exceeded batch_timeout={self.timeout:g} s; worker {slot.pid} killed after {elapsed:.1f} s",
                )
                continue
            if slot.pid is None:
                unknown.append(slot)
                continue
            code = self._exitcode(slot.pid)
            if code is not None and code != -signal.SIGTERM and code != 0:
                charged[slot] = ("worker-died", f"worker process {slot.pid} died ({_signal_name(code)})")
        deaths = self._unexplained_deaths({s.pid for s in broken if s.pid is not None})
        if len(unknown) == 1 and len(deaths) == 1:
            # One batch whose worker is unknown, one worker dead for no known batch: that is the pair.
            pid, code = deaths[0]
            charged[unknown[0]] = ("worker-died", f"worker process {pid} died ({_signal_name(code)})")
        elif not charged and unknown:
            # The dead worker's start message never arrived: blame the batches we cannot clear.
            for slot in unknown:
                charged[slot] = ("worker-died", "worker process died (pool broke while this batch was running)")
        for slot, (_, message) in charged.items():
            report.events.append(f"batch {slot.task.index} attempt {slot.task.attempt}: {message}")
        innocent = [s.task.index for s in broken if s not in charged]
        if innocent:
            report.events.append(f"pool rebuilt; resubmitted without charge: batches {innocent}")
        return charged


class ProcessExecutor(_FuturePoolExecutor):
    """A local process pool (spawn start method), rebuilt whenever a worker dies."""

    name = "process"
    can_kill = True

    def __init__(self, *args: Any, start_method: str = "spawn", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if start_method == "fork":
            raise ValueError("the fork start method hangs once PySCF's OpenMP threads exist; use spawn or forkserver")
        self.start_method = start_method
        self._processes: dict[int, Any] = {}
        self._channel: Any = None
        self._channel_writer: Any = None

    def _start_pool(self, report: ExecutorReport, solver: str | None, size: int) -> int:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from hinqs.sqd.worker import initialize_process_worker, main_module_hidden, spawn_environment, worker_info

        start = time.perf_counter()
        context = multiprocessing.get_context(self.start_method)
        # A plain pipe: workers write small messages (atomic below PIPE_BUF) in their own thread,
        # without a lock a dying worker could leave held, so a start message is out before the
        # batch begins (a Queue's feeder thread might not have sent it when the worker dies).
        self._channel, self._channel_writer = context.Pipe(duplex=False)
        self._processes = {}
        with spawn_environment(self.threads, strip_launcher=True), main_module_hidden():
            self.pool = ProcessPoolExecutor(
                max_workers=size,
                mp_context=context,
                initializer=initialize_process_worker,
                initargs=(self.threads, self._channel_writer, solver),
            )
            # Spawn every worker now, inside this environment (submit spawns one per call).
            warmups = [self.pool.submit(worker_info) for _ in range(size)]
            self._snapshot()
        infos = self._await_workers(warmups, size)
        report.pool_starts += 1
        report.pool_start_seconds += time.perf_counter() - start
        report.workers = size
        if report.pool_starts == 1:
            report.worker_info = infos
        return size

    def _await_workers(self, warmups: list[Future], size: int) -> list[dict[str, Any]]:
        """Wait until every worker has run its initializer (imports included) and said hello.

        A worker runs its initializer before any task, so once the warm-up calls are answered
        the workers that took them are ready; a hello that still has not come 10 s later is
        not waited for (the pool is usable, only its report is incomplete).
        """
        infos: list[dict[str, Any]] = []
        answered_at: float | None = None
        while len(infos) < size:
            if self._channel.poll(0.05):
                message = self._channel.recv()
                if message[0] == "hello":
                    infos.append(message[1])
                continue
            for future in warmups:
                if future.done() and future.exception() is not None:
                    raise BrokenExecutor(str(future.exception())) from None
            if answered_at is None and all(f.done() for f in warmups):
                answered_at = time.perf_counter()
            if answered_at is not None and time.perf_counter() - answered_at > 10.0:
                break
        for future in warmups:
            future.result()
        return infos

    def _snapshot(self) -> None:
        # ProcessPoolExecutor keeps its processes (pid -> Process) in _processes; their exit codes
        # tell which worker died. Without it a broken pool is blamed on its in-flight batches.
        self._processes.update(getattr(self.pool, "_processes", None) or {})

    def _exitcode(self, pid: int | None) -> int | None:
        process = self._processes.get(pid) if pid is not None else None
        return None if process is None else process.exitcode

    def _unexplained_deaths(self, known_pids: set[int]) -> list[tuple[int, int]]:
        return [
            (pid, process.exitcode)
            for pid, process in self._processes.items()
            if pid not in known_pids and process.exitcode not in (None, 0, -signal.SIGTERM)
        ]

    def _drain_starts(self, slots: Iterable[_Slot]) -> None:
        if self._channel is None:
            return
        by_key = {(s.task.index, s.task.attempt): s for s in slots}
        while True:
            try:
                if not self._channel.poll():
                    return
                message = self._channel.recv()
            except (OSError, EOFError, ValueError):
                return
            if message[0] != "start":
                continue
            _, index, attempt, pid, started = message
            slot = by_key.get((index, attempt))
            if slot is not None:
                slot.pid, slot.started = pid, started

    def _stop_pool(self, kill: bool) -> None:
        if self.pool is None:
            return
        if kill:
            for process in list(self._processes.values()):
                if process.exitcode is None:
                    with contextlib.suppress(Exception):
                        process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = None
        for process in list(self._processes.values()):
            with contextlib.suppress(Exception):
                process.join(timeout=10)
        if self._channel is not None:
            self._channel.close()
            self._channel_writer.close()
            self._channel = self._channel_writer = None


class MPIExecutor(_FuturePoolExecutor):
    """mpi4py.futures ranks: ``python -m mpi4py.futures`` under mpiexec/srun, or spawned workers."""

    name = "mpi"
    can_kill = False

    def _start_pool(self, report: ExecutorReport, solver: str | None, size: int) -> int:
        from hinqs.errors import InputError
        from hinqs.sqd.worker import initialize_mpi_worker, worker_info

        try:
            from mpi4py.futures import MPIPoolExecutor, _core
        except ImportError as exc:
            raise InputError(f"the mpi executor needs mpi4py: {exc}") from None
        # Only the pool server's ranks are supported: spawning workers with MPI_Comm_spawn needs
        # process-manager support that srun and a bare singleton lack (it hangs or aborts).
        if getattr(_core, "SharedPool", "unknown") is None:
            raise InputError(
                "the mpi executor needs MPI ranks: run it as "
                "'mpiexec -n N python -m mpi4py.futures -m hinqs diagonalize ...' (or srun), N-1 ranks solve"
            )

        start = time.perf_counter()
        # main=False: workers must not import the parent's __main__ (``python -m hinqs`` would run
        # the command line again on every rank); tasks need only the hinqs package.
        self.pool = MPIPoolExecutor(
            max_workers=self.workers, initializer=initialize_mpi_worker, initargs=(self.threads, solver), main=False
        )
        ranks = self.pool.num_workers
        if ranks < 1:
            raise BrokenExecutor("no MPI workers (run under mpiexec with python -m mpi4py.futures)")
        infos = [f.result() for f in [self.pool.submit(worker_info) for _ in range(ranks)]]
        report.pool_starts += 1
        report.pool_start_seconds += time.perf_counter() - start
        report.workers = ranks
        if report.pool_starts == 1:
            report.worker_info = infos
        return ranks

    def _stop_pool(self, kill: bool) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=not kill, cancel_futures=True)
            self.pool = None


def make_executor(
    executor: str,
    *,
    workers: int = 1,
    threads: int = 1,
    retries: int = 0,
    timeout: float | None = None,
    kill_grace: float = 10.0,
) -> BatchExecutor:
    """The executor named ``executor`` (``sequential``, ``process`` or ``mpi``)."""
    if executor == "sequential":
        return SequentialExecutor(threads, retries, timeout)
    if executor == "process":
        return ProcessExecutor(workers, threads, retries=retries, timeout=timeout, kill_grace=kill_grace)
    if executor == "mpi":
        return MPIExecutor(workers, threads, retries=retries, timeout=timeout, kill_grace=kill_grace)
    raise ValueError(f"unknown executor {executor!r}")
