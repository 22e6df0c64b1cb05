"""One batch's ``direct`` solve spread over the ranks of an MPI communicator, its vectors split by rows.

A batch too large for one node is a product space whose Davidson vectors are split by
alpha rows: every rank holds a contiguous block of rows of every vector (the blocks are runs
of :mod:`hinqs.sqd.davidson`'s fixed reduction chunks, split by the rows' cost,
:meth:`hinqs.kernel.ProductHamiltonian.row_costs`), and hinqs' own Davidson
(:func:`hinqs.sqd.davidson.davidson`) runs on those rows, its reductions summed chunk by
chunk in chunk order. For a product a rank needs, besides its own rows of ``C``, the rows its
alpha links and alpha same-spin entries reach (its *halo*, listed once,
:class:`hinqs.kernel.block.RowBlock`): one ``Alltoallw`` sends every rank exactly the rows it
asked for, and the rank computes its rows of ``H C`` (and of ``S^2 C`` for the spin penalty,
from the same rows) with the kernel's tables in the same order as the one-process product.
Nothing of the whole vector is gathered during the solve: memory per rank is about the
Davidson's vectors over the ranks plus one halo. In subspaces of singles and doubles the
halo is nearly every other rank's rows (one vector, transiently; docs/performance.md): a ring
of blocks would bound it by the block size but split each element's sum by source block,
which the bits across rank counts do not allow with this kernel. The energies, states and
cycle counts are bit-identical at any number of ranks and to ``solve_direct`` (a one-rank
run of the same code). Rank 0 alone receives the final vector whole (one ``Gatherv``) to
write it; the others return an empty array as the state's amplitudes.

Every rank builds the whole operator's tables (``K_a + K_b`` times their links: tens of MB
at 4,000 strings per spin, against GB for the vectors).

A singlet over one string set (``sqd.spin_symmetry``) keeps ``C = C^T``: each row computes
a cyclic window of half its columns (rows cost alike, so rows split work and memory alike),
and each rank receives the rest from the other ranks (one ``Alltoallv`` per product, about
one block), the same bits as the one-process mirror (:meth:`SpreadHamiltonian.symmetric`).

With ``sqd.device`` ``cuda`` (or ``auto`` where torch sees a GPU) each rank keeps its block's
tables on a GPU of its own (its node's GPUs in turn,
:func:`hinqs.sqd.device_check.resolve_device`) and computes its rows there with the torch
kernel (:class:`hinqs.kernel.torch_kernel.TorchRowBlock`): the same exchange of halo rows, the
Davidson's vectors on the host, every column of a row computed (no mirror). The rows then
agree with the numba kernel's to float rounding, not bit for bit, and so do the energies
across rank counts; every rank still returns the same bits as every other.

Failures are collective. A rank whose block raises tells the others in the exchange that
follows every product, and every rank then raises the same error, so the batch fails on all
ranks together and the executor can retry it; the batch timeout is rank 0's clock, checked
at every product. Only a rank that dies (or fails between products) cannot report: the
launcher then ends the job, as for the ``mpi`` executor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from hinqs.sqd.davidson import Group, RowSpace, chunk_bounds
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
    """The square :class:`~hinqs.kernel.ProductHamiltonian` with its vectors' rows spread over ``comm``'s ranks.

    It offers what :func:`hinqs.sqd.solvers.solve_on_operator` uses: ``space`` (this rank's
    rows and the reductions), ``diagonal``, ``apply``, ``apply_spin_square`` and
    ``apply_both`` on this rank's rows (the same bits as those rows of the whole product),
    ``scatter`` and ``gather``. ``expired`` (rank 0's) says, after each product, whether the
    batch's time is up: a message, or None. ``device`` is ``sqd.device``: ``cpu`` (or None) the
    numba rows, else the torch rows on the device it resolves to for this rank.
    """

    def __init__(
        self,
        comm: Any,
        build: Callable[[], Any],
        expired: Callable[[], str | None] | None = None,
        mirrored: bool = False,
        device: str | None = None,
    ) -> None:
        from hinqs.kernel.block import RowBlock

        self.comm = comm
        self.expired = expired
        self.ham = self._collective(build)
        self.shape: tuple[int, int] = self.ham.shape
        self.device = None
        if device is not None:
            from hinqs.sqd.device_check import resolve_device

            local = _node_rank(comm)
            self.device = self._collective(lambda: resolve_device(device, local))
        # rows on a torch device compute every column (hinqs.kernel.torch_kernel.TorchRowBlock)
        self.mirrored = bool(mirrored and self.ham.mirrored_spins and self.device is None)
        chunks = chunk_bounds(self.shape)
        costs = np.add.reduceat(self.ham.row_costs(self.mirrored), chunks[:-1]) if self.shape[0] else np.zeros(0)
        self.space = RowSpace(Group(comm), self.shape, split_rows(costs, comm.Get_size()))
        self.bounds = self.space.rank_rows
        self.rows = (self.space.start, self.space.stop)
        block = RowBlock(self.ham, *self.rows, upper=self.mirrored)
        self.block = block if self.device is None else self._collective(lambda: _device_rows(block, self.device))
        self._plan_exchange()

    def _plan_exchange(self) -> None:
        """Who sends which rows to whom, once: every rank asks each owner for its halo rows there.

        A rank sends the rows asked of it straight from its vector (an MPI datatype picking
        them, ``Alltoallw``): no copy of them is made; it receives them contiguously.
        """
        from mpi4py import MPI

        size = self.comm.Get_size()
        owners = np.searchsorted(self.bounds, self.block.halo, side="right") - 1
        asked = [self.block.halo[owners == r] for r in range(size)]
        wanted = self.comm.alltoall(asked)  # wanted[r]: rows rank r needs from me
        n_b = self.shape[1]
        row = MPI.DOUBLE.Create_contiguous(n_b).Commit()
        self._types = [row]  # kept for the operator's life (a few per batch)
        send_types = []
        for rows in wanted:
            picked = row.Create_indexed_block(1, [int(i) for i in rows - self.rows[0]]).Commit() if len(rows) else row
            if len(rows):
                self._types.append(picked)
            send_types.append(picked)
        zeros = np.zeros(size, np.int64)
        self._send = ((np.array([1 if len(w) else 0 for w in wanted], np.int64), zeros), send_types)
        recv_counts = np.array([len(q) * n_b for q in asked], np.int64)
        recv_displacements = np.concatenate([[0], np.cumsum(recv_counts)[:-1]]).astype(np.int64) * 8
        self._recv = ((recv_counts, recv_displacements), [MPI.DOUBLE] * size)

    def _compact(self, c: np.ndarray) -> np.ndarray:
        """This rank's rows followed by its halo rows, received from their owners (one Alltoallw)."""
        c = np.ascontiguousarray(c, dtype=np.float64).reshape(self.space.local_shape)
        out = np.empty((self.block.rows + len(self.block.halo), self.shape[1]))
        out[: self.block.rows] = c
        recv = out[self.block.rows :]
        self.comm.Alltoallw([c, *self._send], [recv, *self._recv])
        return out

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

    def symmetric(self, c: np.ndarray) -> np.ndarray:
        """This rank's rows of ``c`` (in place) made symmetric where :attr:`mirrored` (collective):
        each element its row does not compute (:func:`hinqs.kernel.rows.computes`) is set from
        the transposed element, which its column's row computed: in the block's own square
        locally, elsewhere from the owner of that row, every rank sending every other rank
        its rows at that rank's columns (one ``Alltoallv``, about one block per rank)."""
        if not self.mirrored:
            return c
        from mpi4py import MPI

        c = c.reshape(self.space.local_shape)
        self.block.mirror(c)
        rank, size = self.comm.Get_rank(), self.comm.Get_size()
        rows = np.diff(self.bounds).astype(np.int64)
        mine = int(rows[rank])
        counts = np.array([0 if r == rank else mine * int(rows[r]) for r in range(size)], np.int64)
        displacements = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        send = np.empty(int(counts.sum()))
        for r in range(size):
            if r != rank:
                block = send[displacements[r] : displacements[r] + counts[r]].reshape(mine, int(rows[r]))
                np.copyto(block, c[:, self.bounds[r] : self.bounds[r + 1]])
        recv = np.empty(int(counts.sum()))  # from rank r: its rows x mine, as many as I sent it
        self.comm.Alltoallv([send, (counts, displacements), MPI.DOUBLE], [recv, (counts, displacements), MPI.DOUBLE])
        del send
        for r in range(size):
            if r != rank:
                other = recv[displacements[r] : displacements[r] + counts[r]].reshape(int(rows[r]), mine)
                self.block.fill_from(c, other, int(self.bounds[r]))
        return c

    def diagonal(self) -> np.ndarray:
        """This rank's rows of H's diagonal (collective where mirrored)."""
        return self.symmetric(self.block.diagonal())

    def _product(self, c: np.ndarray, *kernels: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
        """Each kernel's rows from one exchange of ``c``'s halo rows, then mirrored (collective).

        The rows and their halo (about one whole vector at 2 ranks) are let go before the
        mirror's exchange buffers are taken, so the product's peak is the larger of the two
        and not their sum.
        """
        compact = self._compact(c)
        outs = self._collective(functools.partial(_each, kernels, compact))
        del compact
        return [self.symmetric(out) for out in outs]

    def apply(self, c: np.ndarray) -> np.ndarray:
        """This rank's rows of ``H C`` from its rows of ``C`` (collective)."""
        return self._product(c, self.block.apply)[0]

    def apply_spin_square(self, c: np.ndarray) -> np.ndarray:
        """This rank's rows of ``S^2 C`` (collective)."""
        return self._product(c, self.block.apply_spin_square)[0]

    def apply_both(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This rank's rows of ``H C`` and ``S^2 C`` from one exchange of rows (collective)."""
        h_c, s_c = self._product(c, self.block.apply, self.block.apply_spin_square)
        return h_c, s_c

    def scatter(self, whole: np.ndarray | None) -> np.ndarray | None:
        """This rank's rows of rank 0's whole vector (None where rank 0 has none; collective)."""
        from mpi4py import MPI

        has = self.comm.bcast(whole is not None and np.size(whole) == self.shape[0] * self.shape[1], root=0)
        if not has:
            return None
        counts = np.diff(self.bounds) * self.shape[1]
        send = None
        if self.comm.Get_rank() == 0:
            send = [np.ascontiguousarray(whole, dtype=np.float64), (counts, self.bounds[:-1] * self.shape[1]),
                    MPI.DOUBLE]  # fmt: skip
        out = np.empty(self.space.local_shape)
        self.comm.Scatterv(send, out, root=0)
        return out

    def gather(self, c: np.ndarray) -> np.ndarray:
        """The whole vector on rank 0, each rank's rows in turn (elsewhere an empty array; collective)."""
        from mpi4py import MPI

        c = np.ascontiguousarray(c, dtype=np.float64)
        if self.comm.Get_rank() != 0:
            self.comm.Gatherv(c, None, root=0)
            return np.empty((0, self.shape[1]))
        out = np.empty(self.shape)
        counts = np.diff(self.bounds) * self.shape[1]
        self.comm.Gatherv(c, [out, (counts, self.bounds[:-1] * self.shape[1]), MPI.DOUBLE], root=0)
        return out


def _node_rank(comm: Any) -> int:
    """This rank's place among the ranks on its node (collective)."""
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return int(node.Get_rank())
    finally:
        node.Free()


def _device_rows(block: Any, device: Any) -> Any:
    """The block's rows on ``device`` (:class:`hinqs.kernel.torch_kernel.TorchRowBlock`), a GPU's
    free memory checked first against the block's rows and halo (one line when they do not fit)."""
    from hinqs.kernel import torch_kernel
    from hinqs.kernel.device_memory import WORK_MB, device_need

    ham, n_b = block.ham, block.ham.shape[1]
    target = (block.rows, n_b)
    need = device_need((block.rows + len(block.halo), n_b), target, ham.norb, ham.nelec, WORK_MB["cuda"])
    torch_kernel.prepare_device(device, target, need)
    return torch_kernel.TorchRowBlock(block, device)


def _each(kernels: tuple[Callable[[np.ndarray], np.ndarray], ...], rows: np.ndarray) -> list[np.ndarray]:
    """Every kernel applied to the same rows (no closure keeps ``rows`` alive after the call)."""
    return [kernel(rows) for kernel in kernels]


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

    Called on every rank (collective), with rank 0's ``guess`` (the others' is not read);
    every rank returns the same energy, <S^2>, residual and occupancies, bit for bit, which
    are also ``solve_direct``'s; rank 0 alone gets the state's amplitudes (the others an
    empty array), ``solve_direct``'s bits. On a torch ``settings.device`` the products run on
    each rank's device, equal to those to float rounding.
    """
    from hinqs.kernel import ProductHamiltonian

    def operator(strs_a: np.ndarray, strs_b: np.ndarray, mirrored: bool) -> SpreadHamiltonian:
        def build() -> ProductHamiltonian:
            return ProductHamiltonian(hcore, eri, nelec, strs_a, strs_b)

        return SpreadHamiltonian(comm, build, expired, mirrored, settings.device)

    return solve_on_operator(operator, ci_strs_a, ci_strs_b, hcore.shape[0], nelec, settings, guess)


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
