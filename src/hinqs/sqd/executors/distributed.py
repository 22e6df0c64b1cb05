"""The ``distributed`` backend: every batch solved by all MPI ranks together, one after another.

The other backends give each batch to one worker; a batch larger than one node's cores
can solve in time needs its products spread instead. The step runs SPMD under the MPI
launcher (``parallel.mpi_launcher`` with ``parallel.workers`` ranks, e.g.
``srun -n 64 python -m mpi4py -m hinqs diagonalize ... --executor distributed``): rank 0
leads (it plans the batches, merges and writes every output exactly as the sequential
executor does), the other ranks follow (:func:`follow`): for each batch attempt the leader
broadcasts the task, and every rank runs it through :func:`hinqs.sqd.task.run_task` with
the solve spread over the ranks (:func:`hinqs.sqd.distributed.solve_spread`: each rank
holds its rows of the Davidson's vectors, rank 0 alone the warm start and the final state
whole), whose result is bit-identical to the sequential executor's.

Crash tolerance, as far as MPI allows: an exception in a rank's share of a product, a
non-finite result or the batch timeout (rank 0's clock, checked at every product; the
per-rank ``SIGALRM`` timer is not used, as ranks would stop at different points) fails the
batch on every rank at once, and the leader retries it as ``parallel.retries`` says. A
rank that dies ends the job (``python -m mpi4py`` aborts every rank when one fails, rather
than leaving the others waiting); the rerun resumes from the batches already on disk.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from hinqs.errors import InputError
from hinqs.sqd.dimension import MemoryBudget
from hinqs.sqd.executors.base import ExecutorReport, OutcomeCallback
from hinqs.sqd.executors.policy import Attempts
from hinqs.sqd.task import BatchTask, run_task

NOT_LEADER = (
    "the distributed executor is led by rank 0: start the step as "
    "'mpiexec -n N python -m mpi4py -m hinqs diagonalize ... --executor distributed' (or srun)"
)

_STOP = None
_BUDGET = "budget"
_INFO = "info"
_SOLVE = "solve"


def world() -> Any:
    """MPI's world communicator; a one-line error when mpi4py is missing."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise InputError(f"the distributed executor needs mpi4py: {exc}") from None
    return MPI.COMM_WORLD


def _deadline(timeout: float | None) -> Callable[[], str | None] | None:
    """Rank 0's batch clock: a message once ``timeout`` seconds have passed since now, else None."""
    if timeout is None:
        return None
    due = time.monotonic() + timeout

    def expired() -> str | None:
        return f"exceeded batch_timeout={timeout:g} s" if time.monotonic() > due else None

    return expired


def _solve(comm: Any, task: BatchTask, timeout: float | None = None) -> Any:
    """One batch attempt on every rank (collective): ``run_task`` with the products spread."""
    from hinqs.sqd.distributed import solve_spread

    if comm.Get_rank() != 0:  # the warm start's rows come from rank 0: a follower never holds it whole
        task = replace(task, initial_guess=None)
    spread = functools.partial(solve_spread, comm, expired=_deadline(timeout))
    return run_task(task, solve_function=spread)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """A follower's own output (Davidson's progress lines) goes nowhere: the leader's is the log."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _answer(comm: Any, kind: str, payload: Any) -> Any:
    """What every rank does for one of the leader's messages (the leader through the same code)."""
    if kind == _BUDGET:
        from hinqs.sqd.distributed import rank_budget

        return rank_budget(comm, payload)
    if kind == _INFO:
        from hinqs.sqd.worker import worker_info

        return comm.gather(worker_info().as_dict(), root=0)
    if kind == _SOLVE:
        return _solve(comm, payload)
    raise ValueError(f"unknown message {kind!r} from the leader")


def follow(comm: Any | None = None) -> int:
    """A follower rank: answer the leader's messages until it says stop; exit code 0."""
    comm = comm or world()
    with _silenced():
        while (message := comm.bcast(None, root=0)) is not _STOP:
            _answer(comm, *message)
    return 0


class DistributedExecutor:
    """The leader's side (rank 0): each batch attempt broadcast to every rank and solved by all.

    Use it as a context manager (or call :meth:`close`): the followers wait for the leader's
    stop message, which leaving the block sends, whatever happened inside it.
    """

    name = "distributed"

    def __init__(self, threads: int, retries: int = 0, timeout: float | None = None, comm: Any | None = None) -> None:
        self.comm = comm or world()
        if self.comm.Get_rank() != 0:
            raise InputError(NOT_LEADER)
        self.threads = threads
        self.retries = retries
        self.timeout = timeout
        self._open = True

    @property
    def ranks(self) -> int:
        return int(self.comm.Get_size())

    def _tell(self, kind: str, payload: Any = None) -> None:
        """Send every follower its next message (they then run :func:`_answer` with the leader)."""
        if not self._open:
            raise RuntimeError("the distributed executor's followers were already stopped")
        self.comm.bcast((kind, payload), root=0)

    def memory_budget(self, memory_mb: float | None) -> MemoryBudget:
        """The memory each rank may use (the smallest rank's share; asks every rank)."""
        self._tell(_BUDGET, memory_mb)
        return _answer(self.comm, _BUDGET, memory_mb)

    def run(self, tasks: Sequence[BatchTask], on_outcome: OutcomeCallback) -> ExecutorReport:
        report = ExecutorReport(self.name, self.ranks, self.threads)
        self._tell(_INFO)
        report.worker_info = _answer(self.comm, _INFO, None)
        attempts = Attempts(self.retries, on_outcome)
        for first in tasks:
            # No per-rank timer: the leader's clock stops the batch on every rank at a product.
            task: BatchTask | None = replace(first, threads=self.threads, timeout=None)
            while task is not None:
                self._tell(_SOLVE, task)
                task = attempts.finish(task, _solve(self.comm, task, self.timeout))
        return report

    def close(self) -> None:
        """Tell the followers to stop (once)."""
        if self._open:
            self._open = False
            self.comm.bcast(_STOP, root=0)

    def __enter__(self) -> DistributedExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spmd(threads: int, retries: int, timeout: float | None, lead: Callable[[DistributedExecutor], int]) -> int:
    """Run a step on every rank of the world: rank 0 calls ``lead(executor)``, the others follow."""
    comm = world()
    if comm.Get_rank() != 0:
        return follow(comm)
    with DistributedExecutor(threads, retries, timeout, comm) as executor:
        return lead(executor)
