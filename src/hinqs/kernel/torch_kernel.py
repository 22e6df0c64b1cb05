"""The product-space Hamiltonian in torch: the numba kernel's formulation on a GPU (or torch's CPU).

The link tables are the numba operator's (:class:`hinqs.kernel.ProductHamiltonian` builds them
once on the host); here they are padded into dense index tensors on a ``torch.device``, and
``sigma = H C`` is computed as

``opposite spin``
    For a chunk of alpha target rows ``x`` with alpha links ``(J_l, pq_l, s_l)``::

        E[x, l, rs] = s_l (pq_l|rs)            gathered rows of the integrals
        A[x, l, J'] = C[J_l, J']               gathered rows of C
        T[x, rs, J'] = sum_l E[x, l, rs] A[x, l, J']           one batched matrix product
        sigma[x, y] = sum_m s'_m T[x, rs_m, J'_m]              beta links (J'_m, rs_m, s'_m) of y

    The batched product does ``pairs / beta links`` (about 15 at 26 orbitals) times the
    multiply-adds of the numba kernel's sparse double loop, but as dense GEMMs that a GPU
    runs near its peak, and its intermediate ``T`` is ``pairs x K_beta`` per row instead of
    the ``alpha links x K_beta x beta links`` of a fully gathered product. Only the pairs
    ``rs`` that occur in a beta link are kept. Rows are grouped by their number of alpha
    links (sorted, stable; a chunk's longest row has at most :data:`PADDING` times the
    links of its shortest), so padding to a chunk's longest row costs little.

``same spin``
    Both spins' same-spin Hamiltonians (Slater-Condon singles and doubles, and the same-spin
    diagonal on the entries where a target is a source) as dense ``targets x sources``
    matrices: ``H_aa C + C H_bb^T``, two GEMMs (a batch has at most a few thousand strings
    per spin, so the matrices are tens of MB).

Every reduction is a plain ``sum`` or a matrix product, every scatter writes distinct rows:
no atomics, no ``index_add_``. The chunking follows from the tables and a fixed budget per
device type (:data:`hinqs.kernel.device_memory.WORK_MB`), never from the device's free
memory, so a batch gives the same bits run after run on one GPU (with
``CUBLAS_WORKSPACE_CONFIG`` set, as :func:`deterministic_cuda` does). It agrees with the numba kernel to float rounding
(relative 1e-12 checked by the tests), not bit for bit. Float64 throughout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hinqs.kernel.block import RowBlock
from hinqs.kernel.device_memory import WORK_MB, DeviceNeed, check_device_fits, device_need, row_bytes
from hinqs.kernel.links import SideTables
from hinqs.kernel.operator import ProductHamiltonian

# A chunk's rows have at most this many times the links of its first (rows sorted by links):
# padding a row to its chunk's longest wastes at most a fifth of the chunk's products.
PADDING = 1.25


def deterministic_cuda() -> None:
    """cuBLAS's reproducible GEMMs (it reads the variable when it initialises: call before the first product)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False


def free_mb(device: torch.device) -> float:
    """The CUDA device's free memory (MB) as its driver reports it now."""
    free, _total = torch.cuda.mem_get_info(device)
    return free / 2**20


def prepare_device(device: torch.device, shape: tuple[int, int], need: DeviceNeed) -> None:
    """Before any table goes to a CUDA ``device``: cuBLAS's reproducible GEMMs, and the one-line
    refusal (:func:`hinqs.kernel.device_memory.check_device_fits`) when ``need`` does not fit its
    free memory. Nothing on torch's CPU. Every user of the kernel (one batch, a rank's rows, the
    PT2's rows) goes through here."""
    if device.type == "cuda":
        deterministic_cuda()
        check_device_fits(shape, need, free_mb(device), str(device), "torch.cuda.mem_get_info")


@dataclass(frozen=True)
class _Chunk:
    """Alpha target rows of one batched product, their links padded to the chunk's longest row."""

    rows: torch.Tensor  # (R,) target rows
    source: torch.Tensor  # (R, L) alpha source of each link (0 in padding)
    pair: torch.Tensor  # (R, L) pq of each link (0 in padding)
    sign: torch.Tensor  # (R, L) sign of each link (0.0 in padding)


def _padded(ptr: np.ndarray, rows: np.ndarray, width: int, *columns: np.ndarray) -> list[np.ndarray]:
    """CSR entries of ``rows`` as (len(rows), width) arrays, zero past each row's end."""
    counts = ptr[rows + 1] - ptr[rows]
    offsets = np.arange(width)
    inside = offsets[None, :] < counts[:, None]
    index = np.where(inside, ptr[rows][:, None] + offsets[None, :], 0)
    return [
        np.where(inside, column[index], 0) if len(column) else np.zeros(index.shape, column.dtype) for column in columns
    ]


def _dense(n_targets: int, n_sources: int, tables: SideTables) -> np.ndarray:
    """One spin's same-spin Hamiltonian targets x sources, the same-spin diagonal where a target is a source."""
    ident, hptr, hsrc, hval, hdiag = tables.ident, tables.hptr, tables.hsrc, tables.hval, tables.hdiag
    out = np.zeros((n_targets, n_sources))
    out[np.repeat(np.arange(n_targets), np.diff(hptr)), hsrc] = hval  # one entry per (target, source)
    own = np.flatnonzero(ident >= 0)
    out[own, ident[own]] += hdiag[own]
    return out


def _identity(ident: np.ndarray, n_sources: int) -> bool:
    return len(ident) == n_sources and np.array_equal(ident, np.arange(n_sources))


class TorchProductHamiltonian:
    """:class:`hinqs.kernel.ProductHamiltonian`'s ``H C`` and ``S^2 C`` on a torch device.

    Built from the numba operator ``cpu`` (its tables; it also answers :meth:`diagonal`) and
    the same ``eri``. ``work_mb`` bounds one chunk's intermediates (a single row may exceed
    it: a chunk holds at least one); ``None`` takes the device type's budget.
    """

    def __init__(
        self, cpu: ProductHamiltonian, eri: np.ndarray, device: torch.device | str, work_mb: float | None = None
    ) -> None:
        self.cpu = cpu
        self.device = torch.device(device)
        self.work_mb = WORK_MB[self.device.type] if work_mb is None else float(work_mb)
        work_mb = self.work_mb
        self.norb, self.nelec = cpu.norb, cpu.nelec
        self.shape, self.source_shape = cpu.shape, cpu.source_shape
        a, b = cpu.alpha.tables, cpu.beta.tables
        n2 = self.norb**2
        sb, tb = self.source_shape[1], self.shape[1]

        # Beta links: one flat index into T[x] = (pair among the used ones) x beta sources.
        b_lptr, b_lsrc, b_lpair, b_lsign = b.lptr, b.lsrc, b.lpair, b.lsign
        used, pair_used = np.unique(b_lpair, return_inverse=True)
        self._pairs = len(used)
        b_width = int(np.diff(b_lptr).max(initial=0))
        flat, b_sign = _padded(b_lptr, np.arange(tb), b_width, pair_used.reshape(-1) * sb + b_lsrc, b_lsign)
        self._beta_flat, self._beta_sign = self._put(flat), self._put(b_sign)

        # The integrals' columns at the used pairs, and S^2's (W[pq, qp] = -1).
        eri2 = np.asarray(eri, dtype=np.float64).reshape(n2, n2)
        self._eri_cols = self._put(np.ascontiguousarray(eri2[:, used]))
        w = np.zeros((n2, len(used)))
        w[(used % self.norb) * self.norb + used // self.norb, np.arange(len(used))] = -1.0
        self._spin_cols = self._put(w)

        # Alpha rows by number of links (stable), in chunks that fit the budget.
        self._a_tables, self._b_tables, self._b_width = a, b, b_width
        counts = np.diff(a.lptr)
        order = np.argsort(counts, kind="stable")
        order = order[counts[order] > 0] if self._pairs else order[:0]
        self._chunks = self._plan(order)

        # Same-spin parts, dense; the rows/columns whose target is a source (rectangular products).
        self._h_alpha = self._put(_dense(self.shape[0], self.source_shape[0], a))
        self._h_beta_t = self._put(np.ascontiguousarray(_dense(tb, sb, b).T))
        self._alpha_square = _identity(a.ident, self.source_shape[0])
        self._beta_square = _identity(b.ident, sb)
        self._alpha_own = self._put(np.flatnonzero(a.ident >= 0))
        self._alpha_src = self._put(a.ident[a.ident >= 0])
        self._beta_own = self._put(np.flatnonzero(b.ident >= 0))
        self._beta_src = self._put(b.ident[b.ident >= 0])

    def _plan(self, order: np.ndarray) -> list[_Chunk]:
        """Chunks of the alpha target rows ``order`` (sorted by their number of links), each row's
        links padded to its chunk's longest, each chunk's work within :attr:`work_mb`."""
        a = self._a_tables
        counts = np.diff(a.lptr)
        sb, tb = self.source_shape[1], self.shape[1]
        chunks: list[_Chunk] = []
        start = 0
        while start < len(order):
            stop, first = start + 1, int(counts[order[start]])
            while stop < len(order):
                width = int(counts[order[stop]])  # sorted: the chunk's longest row so far
                if (
                    width > PADDING * first
                    or (stop + 1 - start) * row_bytes(width, self._pairs, sb, tb, self._b_width) > self.work_mb * 2**20
                ):
                    break
                stop += 1
            rows = order[start:stop]
            width = int(counts[rows[-1]])
            source, pair, sign = _padded(a.lptr, rows, width, a.lsrc, a.lpair, a.lsign)
            chunks.append(_Chunk(*(self._put(x) for x in (rows, source, pair, sign))))
            start = stop
        return chunks

    @classmethod
    def from_integrals(
        cls,
        hcore: np.ndarray,
        eri: np.ndarray,
        nelec: tuple[int, int],
        strs_a: np.ndarray,
        strs_b: np.ndarray,
        device: torch.device | str,
        targets_a: np.ndarray | None = None,
        targets_b: np.ndarray | None = None,
        work_mb: float | None = None,
    ) -> TorchProductHamiltonian:
        """The tables built by the numba operator on the host, then moved to ``device``."""
        cpu = ProductHamiltonian(hcore, eri, nelec, strs_a, strs_b, targets_a, targets_b)
        return cls(cpu, eri, device, work_mb)

    def _put(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    @property
    def chunks(self) -> int:
        """How many batched products one application takes."""
        return len(self._chunks)

    def planned_mb(self) -> float:
        """The device memory this operator's tables, vectors and largest chunk take (MB), from its own tables."""
        held = (self._beta_flat, self._beta_sign, self._eri_cols, self._spin_cols, self._h_alpha, self._h_beta_t)
        held += (self._alpha_own, self._alpha_src, self._beta_own, self._beta_src)
        tables = sum(t.numel() * t.element_size() for t in held)
        tables += sum(sum(t.numel() * t.element_size() for t in vars(c).values()) for c in self._chunks)
        vectors = 8 * (self.source_shape[0] * self.source_shape[1] + 3 * self.shape[0] * self.shape[1])
        b_width = int(self._beta_sign.shape[1])
        work = max(
            (
                len(c.rows) * row_bytes(int(c.sign.shape[1]), self._pairs, self.source_shape[1], self.shape[1], b_width)
                for c in self._chunks
            ),
            default=0,
        )
        return (tables + vectors + work) / 2**20

    def estimated_mb(self) -> float:
        """:func:`hinqs.kernel.device_memory.device_need`'s bound for this operator's shapes and budget (MB)."""
        return device_need(self.source_shape, self.shape, self.norb, self.nelec, self.work_mb).total_mb

    def _chunk_opposite(self, c: torch.Tensor, chunk: _Chunk, pair_cols: torch.Tensor) -> torch.Tensor:
        """The opposite-spin sum of one chunk's rows: ``(R, beta targets)``."""
        e = pair_cols[chunk.pair] * chunk.sign.unsqueeze(-1)  # (R, L, pairs)
        t = torch.bmm(e.transpose(1, 2), c[chunk.source])  # (R, pairs, beta sources)
        gathered = t.reshape(len(chunk.rows), -1)[:, self._beta_flat]  # (R, beta targets, beta links)
        return (gathered * self._beta_sign).sum(-1)

    def _opposite(self, c: torch.Tensor, pair_cols: torch.Tensor) -> torch.Tensor:
        """``sum_l s_l sum_m s'_m (pq_l|rs_m) C[J_l, J'_m]`` for every target, ``pair_cols`` the "integrals"."""
        out = torch.zeros(self.shape, dtype=torch.float64, device=self.device)
        for chunk in self._chunks:
            out[chunk.rows] = self._chunk_opposite(c, chunk, pair_cols)
        return out

    def _source_tensor(self, c: torch.Tensor) -> torch.Tensor:
        if tuple(c.shape) != self.source_shape or c.dtype != torch.float64:
            raise ValueError(f"C must be float64 of shape {self.source_shape}, got {c.dtype} {tuple(c.shape)}")
        return c.to(self.device)

    def apply_tensor(self, c: torch.Tensor) -> torch.Tensor:
        """``H C`` (targets' shape) for a float64 tensor ``C`` over the sources, on this device."""
        c = self._source_tensor(c)
        out = self._opposite(c, self._eri_cols)
        if self._alpha_square and self._beta_square:
            out += self._h_alpha @ c
            out += c @ self._h_beta_t
            return out
        out[:, self._beta_own] += self._h_alpha @ c[:, self._beta_src]
        out[self._alpha_own] += c[self._alpha_src] @ self._h_beta_t
        return out

    def spin_exchange_tensor(self, c: torch.Tensor) -> torch.Tensor:
        """``-sum_pq E^a_qp E^b_pq C``: S^2's opposite-spin sum, without its diagonal constant."""
        return self._opposite(self._source_tensor(c), self._spin_cols)

    def apply_spin_square_tensor(self, c: torch.Tensor) -> torch.Tensor:
        """``S^2 C``: (N_b + S_z (S_z + 1)) C - sum_pq E^a_qp E^b_pq C, as the numba operator computes it."""
        c = self._source_tensor(c)
        out = self.spin_exchange_tensor(c)
        if self.source_shape == self.shape:
            sz = 0.5 * (self.nelec[0] - self.nelec[1])
            out += (self.nelec[1] + sz * (sz + 1.0)) * c
        return out

    def _host_to_device(self, c: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(np.asarray(c, dtype=np.float64).reshape(self.source_shape))
        return torch.from_numpy(array).to(self.device)

    def apply(self, c: np.ndarray) -> np.ndarray:
        """``H C`` for a NumPy ``C`` (what PySCF's Davidson hands over), as NumPy on the host."""
        return self.apply_tensor(self._host_to_device(c)).cpu().numpy()

    def apply_spin_square(self, c: np.ndarray) -> np.ndarray:
        """``S^2 C`` for a NumPy ``C``, as NumPy on the host."""
        return self.apply_spin_square_tensor(self._host_to_device(c)).cpu().numpy()

    def diagonal(self) -> np.ndarray:
        """H's diagonal on the targets (the numba operator's: computed once per solve, on the host)."""
        return self.cpu.diagonal()


@dataclass(frozen=True)
class _Side:
    tables: SideTables


@dataclass(frozen=True)
class _BlockTables:
    """A row block's tables where :class:`TorchProductHamiltonian` reads an operator's: its alpha
    targets the block's rows, its alpha sources the compact matrix's rows (own, then halo)."""

    norb: int
    nelec: tuple[int, int]
    shape: tuple[int, int]
    source_shape: tuple[int, int]
    alpha: _Side
    beta: Any


class TorchRowBlock:
    """A :class:`hinqs.kernel.block.RowBlock`'s rows of ``H C`` and ``S^2 C`` on a torch device.

    What a rank of the distributed solve keeps on its GPU: the block's alpha tables (renumbered
    into the compact matrix ``[own rows; halo rows]``), the beta tables and the integrals; each
    product moves the compact matrix to the device and the block's rows back. The same batched
    products as :class:`TorchProductHamiltonian`, so the rows agree with the numba block's to
    float rounding, not bit for bit. Every row computes all of its columns (no mirrored
    windows): a GPU has the flops, and the mirror's exchange would cost a transfer per product.
    """

    def __init__(self, block: RowBlock, device: torch.device | str, work_mb: float | None = None) -> None:
        if block.upper:
            raise ValueError("the torch rows compute every column: build the RowBlock with upper=False")
        ham = block.ham
        self.block = block
        self.rows, self.halo = block.rows, block.halo
        tables = _BlockTables(ham.norb, ham.nelec, (block.rows, ham.shape[1]),
                              (block.rows + len(block.halo), ham.shape[1]), _Side(block.tables), ham.beta)  # fmt: skip
        self.device_ham = TorchProductHamiltonian(tables, ham._eri2, device, work_mb)  # type: ignore[arg-type]

    def apply(self, compact: np.ndarray) -> np.ndarray:
        """The block's rows of ``H C`` from the compact matrix (own rows, then halo rows)."""
        return self.device_ham.apply(compact)

    def apply_spin_square(self, compact: np.ndarray) -> np.ndarray:
        """The block's rows of ``S^2 C``: the opposite-spin sum on the device, the constant on the host."""
        device_ham = self.device_ham
        out = device_ham.spin_exchange_tensor(device_ham._host_to_device(compact)).cpu().numpy()
        out += self.block.ham._spin_constant() * np.asarray(compact, dtype=np.float64)[: self.rows]
        return out

    def diagonal(self) -> np.ndarray:
        """The block's rows of H's diagonal (the numba block's, on the host)."""
        return self.block.diagonal()


class TorchPT2Rows:
    """:meth:`hinqs.kernel.ProductHamiltonian.pt2_rows` of one state on the device of ``ham``.

    For each requested alpha target row, the sum over its determinants outside the sources'
    product of ``<x|H|C>^2 / (e_var - H_xx)`` (terms with ``H_xx`` above ``e_var``), the number
    of terms and of intruders (``H_xx`` below ``e_var``, left out), as the numba rows count them.
    What every request reads (C, the diagonal's parts, the sources' rows of ``C H_bb^T``) goes
    to the device once, when the state's rows are first asked for; a request is summed a chunk
    of rows at a time (:meth:`TorchProductHamiltonian._plan`), each reduced on the device as soon
    as it is computed, so nothing of the targets' product is held. ``jvec`` and ``occ_b`` are
    the numba operator's (``_jvec``, ``beta.occ``): the diagonal's opposite-spin Coulomb part,
    as one matrix product. The sums agree with the numba rows' to float rounding.
    """

    def __init__(
        self, ham: TorchProductHamiltonian, c: np.ndarray, e_var: float, jvec: np.ndarray, occ_b: np.ndarray
    ) -> None:
        self.ham = ham
        a, b = ham._a_tables, ham._b_tables
        n_b = ham.shape[1]
        occupied = np.zeros((n_b, ham.norb))
        occupied[np.repeat(np.arange(n_b), occ_b.shape[1]), occ_b.reshape(-1)] = 1.0
        own_at = np.full(ham.shape[0], -1, np.int64)  # a target row's place among the sources' rows
        own_at[np.flatnonzero(a.ident >= 0)] = np.arange(int(np.count_nonzero(a.ident >= 0)))
        self.e_var = float(e_var)
        self.c = ham._host_to_device(c)
        self.jvec = ham._put(np.asarray(jvec, dtype=np.float64))  # (alpha targets, norb)
        self.occupied_t = ham._put(np.ascontiguousarray(occupied.T))  # (norb, beta targets)
        self.a_hdiag, self.b_hdiag = ham._put(a.hdiag), ham._put(b.hdiag)
        self.col_source = ham._put(b.ident >= 0)
        self.own_at = ham._put(own_at)  # -1: the row is not a source
        self.beta_part = self.c[ham._alpha_src] @ ham._h_beta_t  # the source rows' beta same-spin part

    def __call__(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row sums, term counts and intruder counts of the alpha target ``rows``."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        sums, counts, below = np.zeros(len(rows)), np.zeros(len(rows), np.int64), np.zeros(len(rows), np.int64)
        position = np.argsort(np.diff(self.ham._a_tables.lptr)[rows], kind="stable")
        done = 0
        for chunk in self.ham._plan(rows[position]):
            at = position[done : done + len(chunk.rows)]
            sums[at], counts[at], below[at] = (t.cpu().numpy() for t in self._chunk(chunk))
            done += len(chunk.rows)
        return sums, counts, below

    def _chunk(self, chunk: _Chunk) -> tuple[torch.Tensor, ...]:
        """One chunk's rows of H C over every beta target, reduced to their PT2 sums and counts."""
        ham, rows = self.ham, chunk.rows
        if chunk.source.shape[1] and ham._pairs:
            v = ham._chunk_opposite(self.c, chunk, ham._eri_cols)
        else:  # no alpha links (a double of the sources' strings): the same-spin parts alone
            v = torch.zeros((len(rows), ham.shape[1]), dtype=torch.float64, device=ham.device)
        v[:, ham._beta_own] += ham._h_alpha[rows] @ self.c[:, ham._beta_src]
        own = self.own_at[rows]
        is_own = own >= 0
        v[is_own] += self.beta_part[own[is_own]]
        hdiag = self.a_hdiag[rows].unsqueeze(1) + self.b_hdiag.unsqueeze(0) + self.jvec[rows] @ self.occupied_t
        outside = ~(is_own.unsqueeze(1) & self.col_source.unsqueeze(0))
        connected = outside & (v != 0.0)
        denominator = self.e_var - hdiag
        intruder = connected & (denominator > 1e-10)
        kept = connected & (denominator < -1e-10)
        terms = torch.where(kept, v * v / torch.where(kept, denominator, torch.ones_like(denominator)), 0.0)
        return terms.sum(1), kept.sum(1), intruder.sum(1)
