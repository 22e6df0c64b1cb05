"""One batch's ``direct`` solve spread over the ranks of an MPI communicator.

A batch too large for one node's cores is a product space whose ``H C`` products (the
Davidson's whole cost) split by rows: every rank computes a contiguous block of alpha rows
of each product (:meth:`hinqs.kernel.ProductHamiltonian.apply_rows`) and one
``Allgatherv`` assembles the whole sigma on every rank. Davidson's own algebra (PySCF's
``lib.davidson1`` on one BLAS thread, as :func:`hinqs.sqd.solvers.solve_direct` runs it)
then meets the same inputs on every rank and follows the same iterations there. The row
kernel sums each element in one fixed order whichever block it falls in, so the energies,
states and cycle counts are bit-identical at any number of ranks, and to ``solve_direct``.

Every rank builds the whole operator: its link tables grow with the strings (``K_a + K_b``
times their links, tens of MB at 4,000 strings per spin), while the Davidson's vectors,
which every rank holds whole, grow with the product ``K_a K_b`` (GB). Rows are split by
their work (:meth:`~hinqs.kernel.ProductHamiltonian.row_costs`: links and same-spin entries
per row), deterministically, so every rank computes the same split.

Failures are collective. A rank whose block raises tells the others in the same exchange
that gathers the products, and every rank then raises the same error, so the batch fails
on all ranks together and the executor can retry it; the batch timeout is rank 0's clock,
checked at every product. Only a rank that dies (or fails between products) cannot
report: the launcher then ends the job, as for the ``mpi`` executor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hinqs.sqd.dimension import MemoryBudget, rank_memory_mb
from hinqs.sqd.settings import SolverSettings
from hinqs.sqd.solvers import SolveOutput, solve_on_operator


def split_rows(costs: np.ndarray, parts: int) -> np.ndarray:
    """Bounds ``b`` (length ``parts + 1``) of contiguous row blocks ``[b[r], b[r+1])`` of about equal cost.

    Block ``r`` ends at the first row where the running cost reaches ``(r + 1) / parts`` of
    the total: the same split on every rank, from the costs alone.
    """
    costs = np.asarray(costs, dtype=np.float64)
    running = np.concatenate([[0.0], np.cumsum(costs)])
    targets = running[-1] * np.arange(1, parts) / parts
    inner = np.searchsorted(running, targets, side="left")
    return np.concatenate([[0], inner, [len(costs)]]).astype(np.int64)


class RankFailed(RuntimeError):
    """A rank's share of a product failed: raised on every rank, with that rank's reason."""


class SpreadHamiltonian:
    """The square :class:`~hinqs.kernel.ProductHamiltonian` whose products are spread over ``comm``'s ranks.

    It offers what :func:`hinqs.sqd.solvers.solve_on_operator` uses (``shape``,
    ``diagonal``, ``apply``, ``apply_spin_square``); each product returns the whole sigma
    on every rank. ``expired`` (rank 0's) says, before each exchange, whether the batch's
    time is up: a message, or None.
    """

    def __init__(self, comm: Any, build: Callable[[], Any], expired: Callable[[], str | None] | None = None) -> None:
        self.comm = comm
        self.expired = expired
        self.ham = self._collective(build)
        self.shape: tuple[int, int] = self.ham.shape
        self.bounds = split_rows(self.ham.row_costs(), comm.Get_size())
        rank = comm.Get_rank()
        self.rows = (int(self.bounds[rank]), int(self.bounds[rank + 1]))
        self.counts = np.diff(self.bounds) * self.shape[1]
        self.displacements = self.bounds[:-1] * self.shape[1]

    def _collective(self, compute: Callable[[], Any]) -> Any:
        """``compute()`` on every rank; if it raised on any rank (or the time is up), raise on all."""
        value, error = None, None
        try:
            value = compute()
        except Exception as exc:  # reported to every rank below, then raised there
            error = f"rank {self.comm.Get_rank()}: {type(exc).__name__}: {exc}"
        if error is None and self.expired is not None:
            timeout = self.expired()
            if timeout is not None:
                error = f"timeout:{timeout}"
        errors = [e for e in self.comm.allgather(error) if e is not None]
        if errors:
            first = errors[0]
            if first.startswith("timeout:"):
                from hinqs.sqd.task import BatchTimeout

                raise BatchTimeout(first.removeprefix("timeout:"))
            raise RankFailed(first)
        return value

    def _gathered(self, block: Callable[[], np.ndarray]) -> np.ndarray:
        """This rank's block of rows, computed collectively, then the whole product from every rank's."""
        from mpi4py import MPI

        mine = np.ascontiguousarray(self._collective(block), dtype=np.float64)
        out = np.empty(self.shape)
        self.comm.Allgatherv(mine, [out, self.counts, self.displacements, MPI.DOUBLE])
        return out

    def diagonal(self) -> np.ndarray:
        """H's diagonal, computed whole on every rank (once per solve, about one pass over the product)."""
        return self.ham.diagonal()

    def apply(self, c: np.ndarray) -> np.ndarray:
        """``H C`` over every rank's rows, whole on every rank."""
        return self._gathered(lambda: self.ham.apply_rows(c, *self.rows))

    def apply_spin_square(self, c: np.ndarray) -> np.ndarray:
        """``S^2 C`` over every rank's rows (the spin penalty's product), whole on every rank."""
        return self._gathered(lambda: self.ham.apply_spin_square_rows(c, *self.rows))


def solve_spread(
    comm: Any,
    ci_strs_a: np.ndarray,
    ci_strs_b: np.ndarray,
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    settings: SolverSettings,
    guess: np.ndarray | None = None,
    *,
    expired: Callable[[], str | None] | None = None,
) -> SolveOutput:
    """:func:`hinqs.sqd.solvers.solve_direct` with its products spread over ``comm``'s ranks.

    Called on every rank with the same arguments (collective); every rank returns the same
    output, bit for bit, which is also ``solve_direct``'s.
    """
    from hinqs.kernel import ProductHamiltonian

    def operator(strs_a: np.ndarray, strs_b: np.ndarray) -> SpreadHamiltonian:
        return SpreadHamiltonian(comm, lambda: ProductHamiltonian(hcore, eri, nelec, strs_a, strs_b), expired)

    return solve_on_operator(operator, ci_strs_a, ci_strs_b, hcore.shape[0], settings, guess)


def rank_budget(comm: Any, memory_mb: float | None, env: dict[str, str] | None = None) -> MemoryBudget:
    """The memory every rank of ``comm`` may use for a batch: the smallest rank's share (collective).

    Ranks on the same node share its memory (:func:`hinqs.sqd.dimension.rank_memory_mb`);
    the smallest share decides, so a batch that fits is one that fits every rank.
    """
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        on_node = node.Get_size()
    finally:
        node.Free()
    size = comm.Get_size()
    mine = rank_memory_mb(memory_mb, size, on_node, comm.Get_rank() == 0, env)
    per_rank, source = min(comm.allgather(mine), key=lambda pair: pair[0])
    per_rank = max(0.0, per_rank)
    return MemoryBudget(per_rank * size, per_rank, source, size, holder="rank")
