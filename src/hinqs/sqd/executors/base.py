"""The executor interface: what every backend takes, calls back and reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
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

    def record_pool_start(self, seconds: float, workers: int, infos: list[dict[str, Any]]) -> None:
        """Count a (re)started pool; the first start's worker descriptions are kept."""
        self.pool_starts += 1
        self.pool_start_seconds += seconds
        self.workers = workers
        if self.pool_starts == 1:
            self.worker_info = infos

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BatchExecutor(Protocol):
    """Runs batch tasks; calls ``on_outcome`` once per batch with its final outcome."""

    def run(self, tasks: Sequence[BatchTask], on_outcome: OutcomeCallback) -> ExecutorReport: ...
