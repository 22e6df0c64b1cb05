"""The ``process`` backend: a local ``ProcessPoolExecutor`` that survives its workers' deaths.

``workers`` processes of ``threads_per_worker`` threads each (see :mod:`hinqs.sqd.worker`),
started with ``spawn`` (``fork`` hangs once PySCF's OpenMP threads exist), with the
solver's modules preloaded so that no batch pays for imports. Each worker says hello when
ready and reports which batch it starts, and when, over a pipe (typed messages of
:mod:`hinqs.sqd.messages`).

A dead worker (SIGKILL, segfault, out of memory) breaks the pool: every in-flight future
fails and the pool terminates the other workers. The batch to blame is found from the
workers' exit codes, which the pool does not expose: the pool is given a multiprocessing
context (:class:`RecordingContext`) that keeps every process it creates, so that their
public ``pid`` and ``exitcode`` can be read. A batch past its timeout plus ``kill_grace``
has its worker killed (SIGKILL), which goes the same way. At the end idle workers are
terminated rather than waited for (their interpreter teardown serves nothing).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Iterable
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from typing import Any

from hinqs.sqd.executors.base import ExecutorReport
from hinqs.sqd.executors.policy import Slot
from hinqs.sqd.executors.pool import FuturePoolExecutor
from hinqs.sqd.messages import BatchStarted, WorkerHello

HELLO_GRACE_SECONDS = 10.0
"""How long after the warm-up tasks are answered a missing hello is still waited for."""


class RecordingContext:
    """A multiprocessing context that remembers every process it creates.

    ``ProcessPoolExecutor`` creates its workers through ``mp_context.Process``; everything
    else is the wrapped context's own. The processes themselves are the standard ones.
    """

    def __init__(self, start_method: str) -> None:
        self._base = multiprocessing.get_context(start_method)
        self.processes: list[Any] = []

    def Process(self, *args: Any, **kwargs: Any) -> Any:
        process = self._base.Process(*args, **kwargs)
        self.processes.append(process)
        return process

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def exitcodes(self) -> dict[int, int | None]:
        """pid -> exit code (None while running) of every process started so far."""
        return {p.pid: p.exitcode for p in self.processes if p.pid is not None}


class ProcessExecutor(FuturePoolExecutor):
    """A local process pool (spawn start method), rebuilt whenever a worker dies."""

    name = "process"
    can_kill = True

    def __init__(self, *args: Any, start_method: str = "spawn", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if start_method == "fork":
            raise ValueError("the fork start method hangs once PySCF's OpenMP threads exist; use spawn or forkserver")
        self.start_method = start_method
        self._context: RecordingContext | None = None
        self._channel: Any = None
        self._channel_writer: Any = None

    def _start_pool(self, report: ExecutorReport, solver: str | None, size: int) -> int:
        from hinqs.sqd.worker import initialize_process_worker, main_module_hidden, spawn_environment, worker_info

        start = time.perf_counter()
        self._context = RecordingContext(self.start_method)
        # A plain pipe: workers write small messages (atomic below PIPE_BUF) in their own thread,
        # without a lock a dying worker could leave held, so a start message is out before the
        # batch begins (a Queue's feeder thread might not have sent it when the worker dies).
        self._channel, self._channel_writer = self._context.Pipe(duplex=False)
        with spawn_environment(self.threads, strip_launcher=True), main_module_hidden():
            self.pool = ProcessPoolExecutor(
                max_workers=size,
                mp_context=self._context,  # type: ignore[arg-type]
                initializer=initialize_process_worker,
                initargs=(self.threads, self._channel_writer, solver),
            )
            # Spawn every worker now, inside this environment (submit spawns one per call).
            warmups = [self.pool.submit(worker_info) for _ in range(size)]
        infos = self._await_workers(warmups, size)
        report.record_pool_start(time.perf_counter() - start, size, infos)
        return size

    def _await_workers(self, warmups: list[Future], size: int) -> list[dict[str, Any]]:
        """Wait until every worker has run its initializer (imports included) and said hello.

        A worker runs its initializer before any task, so once the warm-up calls are answered
        the workers that took them are ready; a hello that still has not come
        ``HELLO_GRACE_SECONDS`` later is not waited for (the pool is usable, only its report
        is incomplete).
        """
        infos: list[dict[str, Any]] = []
        answered_at: float | None = None
        while len(infos) < size:
            if self._channel.poll(0.05):
                message = self._channel.recv()
                if isinstance(message, WorkerHello):
                    infos.append(message.as_dict())
                continue
            for future in warmups:
                if future.done() and future.exception() is not None:
                    raise BrokenExecutor(str(future.exception())) from None
            if answered_at is None and all(f.done() for f in warmups):
                answered_at = time.perf_counter()
            if answered_at is not None and time.perf_counter() - answered_at > HELLO_GRACE_SECONDS:
                break
        for future in warmups:
            future.result()
        return infos

    def _exitcodes(self) -> dict[int, int | None]:
        return {} if self._context is None else self._context.exitcodes()

    def _drain_starts(self, slots: Iterable[Slot]) -> None:
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
            if isinstance(message, BatchStarted):
                slot = by_key.get((message.index, message.attempt))
                if slot is not None:
                    slot.pid, slot.started = message.pid, message.started

    def _stop_pool(self, kill: bool) -> None:
        """Shut the pool down and join its processes; also after a start that failed half-way
        (the pool, some processes or only the channel made), so nothing of it stays behind."""
        processes = [] if self._context is None else list(self._context.processes)
        if kill:
            for process in processes:
                if process.exitcode is None:
                    with contextlib.suppress(Exception):
                        process.terminate()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        for process in processes:
            with contextlib.suppress(Exception):
                process.join(timeout=10)
        if self._channel is not None:
            self._channel.close()
            self._channel_writer.close()
            self._channel = self._channel_writer = None
