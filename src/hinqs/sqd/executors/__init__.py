"""Executors: where the batch tasks run, behind one interface, with retries and crash handling.

Every executor takes the first-attempt tasks and a callback, runs each task (retrying a
failed one up to ``retries`` times) and calls the callback once per batch with its final
outcome, as soon as it is known, so the caller can write it to disk right away.

Modules, one job each:

- :mod:`~hinqs.sqd.executors.base`       the interface and the report;
- :mod:`~hinqs.sqd.executors.policy`     retries, giving up, which batch a dead worker is charged to;
- :mod:`~hinqs.sqd.executors.sequential` in-process, one after another: the reference;
- :mod:`~hinqs.sqd.executors.pool`       the submit/collect/recover loop of the pool backends;
- :mod:`~hinqs.sqd.executors.process`    a spawn-started local process pool, SIGKILL on timeout;
- :mod:`~hinqs.sqd.executors.mpi`        mpi4py.futures ranks across nodes;
- :mod:`~hinqs.sqd.executors.distributed` every batch on all MPI ranks together (SPMD, rows split).

Used as a context manager, a ``process`` or ``mpi`` executor keeps its pool between
``run`` calls (e.g. one per iteration of an in-process loop), paying the start-up once::

    with ProcessExecutor(workers=4, threads=4, kill_grace=10.0) as executor:
        for k in range(n_iterations):
            run_diagonalization(..., executor=executor)
"""

from __future__ import annotations

from hinqs.sqd.executors.base import BatchExecutor, ExecutorReport, OutcomeCallback
from hinqs.sqd.executors.mpi import MPIExecutor
from hinqs.sqd.executors.process import ProcessExecutor
from hinqs.sqd.executors.sequential import SequentialExecutor
from hinqs.sqd.registry import EXECUTORS

POOL_BACKENDS: dict[str, type[ProcessExecutor] | type[MPIExecutor]] = {"process": ProcessExecutor, "mpi": MPIExecutor}
"""The pool backends by registry name (``sequential`` has no workers and is built apart)."""

__all__ = [
    "POOL_BACKENDS",
    "BatchExecutor",
    "ExecutorReport",
    "MPIExecutor",
    "OutcomeCallback",
    "ProcessExecutor",
    "SequentialExecutor",
    "make_executor",
]


def make_executor(
    executor: str,
    *,
    workers: int = 1,
    threads: int,
    retries: int = 0,
    timeout: float | None = None,
    kill_grace: float,
) -> BatchExecutor:
    """The executor named ``executor`` (one of :data:`hinqs.sqd.registry.EXECUTORS`)."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}")
    if executor == "sequential":
        return SequentialExecutor(threads, retries, timeout)
    if executor == "distributed":  # rank 0 of an SPMD step; the other ranks run executors.distributed.follow
        from hinqs.sqd.executors.distributed import DistributedExecutor

        return DistributedExecutor(threads, retries, timeout)
    return POOL_BACKENDS[executor](workers, threads, retries=retries, timeout=timeout, kill_grace=kill_grace)
