"""The executor interface: what every backend takes, calls back and reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hinqs.sqd.task import BatchOutcome, BatchTask

OutcomeCallback = Callable[[BatchOutcome], None]
"""Called once per batch with its final outcome, as soon as it is known (the caller saves it)."""


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
