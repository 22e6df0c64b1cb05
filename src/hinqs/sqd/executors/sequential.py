"""The ``sequential`` backend: batches one after another in this process, the reference path.

The timeout is the task's own timer only; a worker death here is the death of the step
(whose finished batches are on disk). Each solve runs under the same conditions as in a
pool worker: :func:`hinqs.sqd.task.run_task` pins every BLAS and OpenMP pool of the
process to the task's thread count, whatever this process loaded them with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hinqs.sqd.executors.base import ExecutorReport, OutcomeCallback
from hinqs.sqd.executors.policy import Attempts
from hinqs.sqd.task import BatchTask, run_task


class SequentialExecutor:
    """Batches one after another in this process: the reference path."""

    def __init__(self, threads: int, retries: int = 0, timeout: float | None = None) -> None:
        self.threads = threads
        self.retries = retries
        self.timeout = timeout

    def run(self, tasks: Sequence[BatchTask], on_outcome: OutcomeCallback) -> ExecutorReport:
        attempts = Attempts(self.retries, on_outcome)
        for first in tasks:
            task: BatchTask | None = replace(first, threads=self.threads, timeout=self.timeout)
            while task is not None:
                task = attempts.finish(task, run_task(task))
        return ExecutorReport("sequential", 1, self.threads)
