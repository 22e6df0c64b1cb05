"""The EN-PT2's rows dealt among the ranks of an MPI communicator: the same sums, in a share of the time.

The correction is a sum of row terms R(x) over the alpha strings of the connected product,
each computed exactly and alone (:meth:`hinqs.kernel.ProductHamiltonian.pt2_rows`): the
complete sum asks for every row once, a sampled estimate for a set of rows per round. Over P
ranks every rank holds the state and the operator's tables (the state once, 8 B per
determinant: what a rank of the spread solve holds for its halo), computes every P-th row of
each request (rows in string order cost alike nearby, so a cyclic deal balances the ranks),
and the rows' results are gathered on every rank in the request's order. Every rank then holds
the same numbers, runs the same strata on the same random stream and adds the same arrays in
the same order: the estimate is bit-identical to one process's at any rank count.

A rank whose rows raise tells the others at the gather, and every rank raises its reason, so
the step fails on every rank together (no rank waits forever on one that left).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

RowResults = tuple[np.ndarray, ...]  # per requested row: sums, term counts, intruders


class RowsFailed(RuntimeError):
    """A rank's rows raised: raised on every rank, with that rank's reason."""


class RowDeal:
    """Rows of a request dealt cyclically over ``comm``'s ranks (``None``: this process alone)."""

    def __init__(self, comm: Any | None = None) -> None:
        self.comm = comm
        self.size = 1 if comm is None else int(comm.Get_size())
        self.rank = 0 if comm is None else int(comm.Get_rank())

    @property
    def leader(self) -> bool:
        """The rank that reports and writes (rank 0)."""
        return self.rank == 0

    def compute(self, rows: np.ndarray, row_results: Callable[[np.ndarray], RowResults]) -> RowResults:
        """``row_results(rows)`` (collective): this rank's every ``size``-th row, gathered in ``rows``' order."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.comm is None:
            return row_results(rows)
        mine, error = None, None
        try:
            mine = row_results(rows[self.rank :: self.size])
        except Exception as exc:  # told to every rank below, raised on all of them
            error = f"rank {self.rank}: {type(exc).__name__}: {exc}"
        gathered = self.comm.allgather((mine, error))
        failed = [reason for _, reason in gathered if reason is not None]
        if failed:
            raise RowsFailed(failed[0])
        parts = [part for part, _ in gathered]
        out = []
        for which in range(len(parts[0])):
            merged = np.empty(len(rows), dtype=parts[0][which].dtype)
            for rank, part in enumerate(parts):
                merged[rank :: self.size] = part[which]
            out.append(merged)
        return tuple(out)
