"""What workers and the parent tell each other, as types rather than bare tuples and strings.

A batch's ``status`` and ``error_kind`` are :class:`~enum.StrEnum` members: they compare
equal to, and serialise to JSON as, the plain strings result.json and the per-batch files
have always held (``"ok"``, ``"worker-died"``, ...), so files written before and after
read the same.

The worker messages travel over a pipe from a spawned worker to the parent. This module
imports nothing heavy: a spawned worker loads it before its thread counts are set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class BatchStatus(StrEnum):
    """The outcome of one batch attempt."""

    OK = "ok"
    FAILED = "failed"


class ErrorKind(StrEnum):
    """Why a batch attempt failed (the ``error_kind`` field of its record)."""

    EXCEPTION = "exception"
    """The solve raised; the message says what."""
    TIMEOUT = "timeout"
    """The batch ran past ``batch_timeout`` (stopped by its own timer, or its worker killed)."""
    NON_FINITE = "non-finite"
    """The solve returned a NaN or infinite energy or amplitudes."""
    WORKER_DIED = "worker-died"
    """The process running it died (SIGKILL, segfault, out of memory) or the pool could not start."""


@dataclass(frozen=True)
class WorkerInfo:
    """A worker's identity and thread set-up, as it sees them (the warm-up task's answer).

    ``numpy_before_environment`` true means NumPy was loaded before the thread variables
    were set in that worker (its BLAS pool is then pinned per solve only).
    """

    pid: int
    host: str
    omp_num_threads: str | None
    has_launcher_vars: bool
    numpy_before_environment: bool | None
    mpi_loaded: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the executor report."""
        return asdict(self)


@dataclass(frozen=True)
class WorkerHello:
    """Sent once by a process-pool worker when its initializer has finished (imports included)."""

    info: WorkerInfo
    preload_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The worker's entry in the executor report."""
        return {**self.info.as_dict(), "preload_seconds": self.preload_seconds}


@dataclass(frozen=True)
class BatchStarted:
    """Sent by a worker just before it solves a batch attempt: which process, and when.

    The parent times a batch from its real start with it and, should the worker die, knows
    which batch it was running.
    """

    index: int
    attempt: int
    pid: int
    started: float
