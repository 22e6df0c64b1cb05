"""The ``mpi`` backend: the same task on MPI ranks through ``mpi4py.futures``.

Run under the pool server, across nodes, e.g.
``srun -n 9 python -m mpi4py.futures -m hinqs diagonalize ... --executor mpi``: rank 0 runs
the step, the other ranks solve (``workers`` is then the number of ranks - 1). Starting
ranks from a plain process would need ``MPI_Comm_spawn``, which srun and a bare singleton
lack (it hangs or aborts), so it is refused. Exceptions, non-finite energies and timeouts
fail one batch as elsewhere. A rank cannot be killed: a batch whose rank has not answered
``batch_timeout + kill_grace`` after it was sent fails as timed out (retried on another rank
as the policy says) and that rank is not used again until it returns; the ranks' start is
waited for at most ``max(START_SECONDS, batch_timeout + kill_grace)``. MPI cannot survive
the death of a rank: the launcher ends the job, and the rerun resumes from the batches
already on disk.
"""

from __future__ import annotations

import time
from concurrent.futures import BrokenExecutor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from hinqs.errors import InputError
from hinqs.sqd.executors.base import ExecutorReport
from hinqs.sqd.executors.pool import FuturePoolExecutor

START_SECONDS = 120.0
"""The least time the ranks get to start and answer (imports of PySCF and, for solve_fermion, JAX)."""

NOT_UNDER_POOL_SERVER = (
    "the mpi executor needs MPI ranks: run it as "
    "'mpiexec -n N python -m mpi4py.futures -m hinqs diagonalize ...' (or srun), N-1 ranks solve"
)


def inside_pool_server() -> bool:
    """Whether this process is rank 0 of ``python -m mpi4py.futures`` (whose ranks are the pool).

    mpi4py has no public way to ask this. Its pool server installs a shared pool in the
    private ``mpi4py.futures._core.SharedPool`` (None otherwise), which every
    ``MPIPoolExecutor`` then uses instead of spawning: that attribute is read here and
    nowhere else. Should a later mpi4py drop it, the check lets the run through (the
    ``num_workers`` check below still refuses a pool without ranks).
    """
    try:
        from mpi4py.futures import _core
    except ImportError:
        return True
    return getattr(_core, "SharedPool", "unknown") is not None


class MPIExecutor(FuturePoolExecutor):
    """mpi4py.futures ranks: ``python -m mpi4py.futures`` under mpiexec/srun."""

    name = "mpi"
    can_kill = False

    def _start_pool(self, report: ExecutorReport, solver: str | None, size: int) -> int:
        from hinqs.sqd.worker import initialize_mpi_worker, worker_info

        try:
            from mpi4py.futures import MPIPoolExecutor
        except ImportError as exc:
            raise InputError(f"the mpi executor needs mpi4py: {exc}") from None
        if not inside_pool_server():
            raise InputError(NOT_UNDER_POOL_SERVER)

        start = time.perf_counter()
        # main=False: workers must not import the parent's __main__ (``python -m hinqs`` would run
        # the command line again on every rank); tasks need only the hinqs package.
        self.pool = MPIPoolExecutor(
            max_workers=self.workers, initializer=initialize_mpi_worker, initargs=(self.threads, solver), main=False
        )
        ranks = self.pool.num_workers
        if ranks < 1:
            raise BrokenExecutor("no MPI workers (run under mpiexec with python -m mpi4py.futures)")
        infos = self._await_ranks([self.pool.submit(worker_info) for _ in range(ranks)])
        report.record_pool_start(time.perf_counter() - start, ranks, infos)
        return ranks

    def _await_ranks(self, warmups: list[Future]) -> list[dict[str, Any]]:
        """Every rank's description, waited for at most :meth:`start_timeout` seconds in all: a
        rank that never answers is a pool that failed to start, not a step that hangs."""
        limit = self.start_timeout()
        deadline = None if limit is None else time.monotonic() + limit
        infos = []
        for future in warmups:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                infos.append(future.result(timeout=left).as_dict())
            except FutureTimeout:
                raise BrokenExecutor(f"an MPI rank did not answer within {limit:g} s of the pool's start") from None
        return infos

    def start_timeout(self) -> float | None:
        """How long the ranks may take to start: the batch timeout plus grace, but at least
        ``START_SECONDS`` (their imports alone take seconds); no limit without a batch timeout."""
        return None if self.timeout is None else max(START_SECONDS, self.timeout + self.kill_grace)

    def _stop_pool(self, kill: bool) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=not kill, cancel_futures=True)
            self.pool = None
