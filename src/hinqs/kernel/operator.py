"""``ProductHamiltonian``: H (and S^2) from a product space of sources into one of targets.

Square (targets = sources) it is the Davidson operator of a batch; rectangular it gives
``<x|H|Psi>`` for strings outside the subspace (the expansion's candidates, the PT2's
connected strings) without ever forming the enlarged product space's vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from hinqs.kernel import rows as rows_kernels
from hinqs.kernel.links import SideTables, orbital_lists, same_spin_table, single_links


@nb.njit(cache=True)
def _jvec(occ: np.ndarray, jmat: np.ndarray) -> np.ndarray:
    """``out[x, r] = sum_{p in x} (pp|rr)``: a string's Coulomb row, for the diagonal's cross term."""
    out = np.zeros((occ.shape[0], jmat.shape[1]))
    for x in range(occ.shape[0]):
        for c in range(occ.shape[1]):
            out[x] += jmat[occ[x, c]]
    return out


def _as_strings(strings: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(np.asarray(strings).astype(np.int64))
    if len(out) > 1 and np.any(out[1:] <= out[:-1]):
        raise ValueError("CI strings must be sorted ascending and unique")
    return out


def _pair_order(strings: np.ndarray) -> np.ndarray:
    """A rank of every string that depends on the string alone, scattered like a random
    permutation (SplitMix64's finaliser of its bits, ties broken by the string): which of a
    pair (x, y) sums it in :meth:`ProductHamiltonian.pt2_rows`."""
    z = np.asarray(strings).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    order = np.empty(len(z), np.int64)
    order[np.lexsort((np.asarray(strings), z))] = np.arange(len(z))
    return order


def _same(sources: tuple[np.ndarray, np.ndarray], targets: tuple[np.ndarray, np.ndarray]) -> bool:
    """Both spins have the same source strings and the same target strings."""
    return np.array_equal(sources[0], sources[1]) and np.array_equal(targets[0], targets[1])


@dataclass(frozen=True)
class _Side:
    """One spin of a product: link tables from its sources into its targets, as the row kernels take them."""

    sources: np.ndarray
    targets: np.ndarray
    n_sources: int
    ident: np.ndarray
    occ: np.ndarray
    tables: SideTables

    @classmethod
    def build(cls, sources: np.ndarray, targets: np.ndarray, nel: int, h1: np.ndarray, eri: np.ndarray) -> _Side:
        norb = h1.shape[0]
        links = single_links(sources, targets, norb, nel)
        same = same_spin_table(sources, targets, norb, nel, h1, eri)
        ident = np.full(len(targets), -1, np.int64)
        if len(sources):
            position = np.minimum(np.searchsorted(sources, targets), len(sources) - 1)
            found = sources[position] == targets
            ident[found] = position[found]
        occ, _ = orbital_lists(targets, norb, nel)
        return cls(sources, targets, len(sources), ident, occ, SideTables.of(ident, same, links))

    @property
    def link_count(self) -> int:
        return len(self.tables.lsrc)

    def columns(self, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Target columns selected by a boolean mask, and their source indices."""
        cols = np.flatnonzero(which).astype(np.int64)
        return cols, self.ident[cols]


class ProductHamiltonian:
    """H from ``strs_a x strs_b`` (sources) into ``targets_a x targets_b`` (default: the sources).

    ``hcore`` and ``eri`` are the active-space integrals (chemists' notation, full 4-index,
    electronic: no core energy). All strings sorted ascending, unique.
    """

    def __init__(
        self,
        hcore: np.ndarray,
        eri: np.ndarray,
        nelec: tuple[int, int],
        strs_a: np.ndarray,
        strs_b: np.ndarray,
        targets_a: np.ndarray | None = None,
        targets_b: np.ndarray | None = None,
    ) -> None:
        h1 = np.ascontiguousarray(hcore, dtype=np.float64)
        eri = np.ascontiguousarray(eri, dtype=np.float64)
        self.norb = h1.shape[0]
        self.nelec = (int(nelec[0]), int(nelec[1]))
        sources = (_as_strings(strs_a), _as_strings(strs_b))
        targets = (
            sources[0] if targets_a is None else _as_strings(targets_a),
            sources[1] if targets_b is None else _as_strings(targets_b),
        )
        alpha = _Side.build(sources[0], targets[0], self.nelec[0], h1, eri)
        if self.nelec[0] == self.nelec[1] and _same(sources, targets):
            # a closed shell over one string set (every singlet batch of the loop): one set of
            # tables serves both spins, half the operator's memory (read-only; the kernels
            # only read them)
            beta = alpha
        else:
            beta = _Side.build(sources[1], targets[1], self.nelec[1], h1, eri)
        jmat = np.ascontiguousarray(np.einsum("ppqq->pq", eri))
        self._assemble(h1, eri, alpha, beta, _jvec(alpha.occ, jmat))

    def _assemble(self, h1: np.ndarray, eri: np.ndarray, alpha: _Side, beta: _Side, jvec: np.ndarray) -> None:
        """Set the operator's sides and integrals (the constructor's, and :meth:`with_beta`'s)."""
        self._h1, self._eri = h1, eri
        self.alpha, self.beta = alpha, beta
        self._eri2 = eri.reshape(self.norb**2, self.norb**2)
        self._jvec = jvec  # the alpha targets' Coulomb rows: the alpha side's alone
        self._w: np.ndarray | None = None

    def with_beta(self, strings: np.ndarray) -> ProductHamiltonian:
        """This operator's alpha side (its tables shared, not rebuilt) with ``strings`` as the beta
        sources and targets: the PT2's proposal scores its connected alpha strings against a few
        partner beta strings with the tables the PT2 itself uses (the largest part of a
        rectangular operator, built once)."""
        out = object.__new__(ProductHamiltonian)
        out.norb, out.nelec = self.norb, self.nelec
        strings = _as_strings(strings)
        beta = _Side.build(strings, strings, self.nelec[1], self._h1, self._eri)
        out._assemble(self._h1, self._eri, self.alpha, beta, self._jvec)
        return out

    @property
    def square(self) -> bool:
        """Targets are the sources (the Davidson operator's case)."""
        return self.alpha.targets is self.alpha.sources and self.beta.targets is self.beta.sources

    @property
    def _one_string_set(self) -> bool:
        """Both spins have the same electrons, source strings and target strings: then the
        constructor gave them one set of tables."""
        return self.beta is self.alpha

    @property
    def mirrored_spins(self) -> bool:
        """Square, with one set of strings and electrons for both spins: swapping the spins maps
        the product space onto itself and H commutes with the swap, so for a coefficient matrix
        with ``C = C^T`` (a singlet's, any even spin's) ``H C`` is symmetric too and half of it
        says all of it (:class:`hinqs.kernel.block.RowBlock` ``upper``)."""
        return self.square and self._one_string_set

    @property
    def source_shape(self) -> tuple[int, int]:
        return (self.alpha.n_sources, self.beta.n_sources)

    @property
    def shape(self) -> tuple[int, int]:
        """The targets' product shape: what :meth:`apply` returns."""
        return (len(self.alpha.targets), len(self.beta.targets))

    def _coefficients(self, c: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(c, dtype=np.float64).reshape(self.source_shape))

    def apply(self, c: np.ndarray) -> np.ndarray:
        """``H C`` on the targets, shape :attr:`shape`.

        Square (targets = sources): the opposite-spin sum row by row, the same-spin parts as
        whole-row axpys (``H_aa C`` and ``(H_bb C^T)^T``), added in that fixed order.
        """
        if self.square:
            return self.apply_rows(c, 0, self.shape[0])
        cols, src = self.beta.columns(np.ones(self.shape[1], bool))
        return rows_kernels.product(
            self._coefficients(c), self._eri2, self.alpha.tables, self.beta.tables, self.shape[0], cols, src, True
        )

    def _square_rows(self, start: int, stop: int) -> tuple[int, int]:
        """``(start, stop)`` checked: a block of the square operator's alpha rows."""
        if not self.square:
            raise ValueError("row blocks are defined for the square (Davidson) operator only")
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.shape[0]:
            raise ValueError(f"alpha rows [{start}, {stop}) are not within [0, {self.shape[0]})")
        return start, stop

    def apply_rows(self, c: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Alpha rows ``start:stop`` of :meth:`apply` (square operator), shape ``(stop - start, K_b)``.

        The same bits as those rows of the whole product: every element is summed in the
        same order (diagonal and opposite-spin sum, then ``H_aa C``'s row, then ``H_bb``
        applied to the block's rows of ``C``), which is what lets MPI ranks each compute a
        block and gather a sigma identical to one process's (:mod:`hinqs.sqd.distributed`).
        """
        c = self._coefficients(c)
        start, stop = self._square_rows(start, stop)
        a, b = self.alpha.tables, self.beta.tables
        out = rows_kernels.square_opposite(c, self._eri2, a, b, True, start, stop)
        out += rows_kernels.same_spin_rows(c, a.hptr[start : stop + 1], a.hsrc, a.hval, stop - start)
        block_t = np.ascontiguousarray(c[start:stop].T)
        out += rows_kernels.same_spin_rows(block_t, b.hptr, b.hsrc, b.hval, self.shape[1]).T
        return out

    def row_costs(self, upper: bool = False) -> np.ndarray:
        """Multiply-adds of each alpha row of :meth:`apply` (square operator), to split rows evenly.

        A row gathers its alpha links' integrals (``norb^2`` each) and coefficient rows
        (``K_b`` each), then every beta link takes a dot product over its alpha links; its
        alpha same-spin entries are axpys of length ``K_b``; the diagonal and its share of
        the beta same-spin part cost ``K_b`` and the beta same-spin entries. ``upper``: each
        row over its window of half the columns (:attr:`mirrored_spins`), the column-wise parts
        in proportion.
        """
        a = self.alpha.tables
        n_b = self.shape[1]
        links = np.diff(a.lptr).astype(np.float64)
        same = np.diff(a.hptr).astype(np.float64)
        share = 1.0
        if upper:  # each row computes its window of columns (hinqs.kernel.rows.half_width): half of them
            half = np.array([rows_kernels.half_width(g, n_b) for g in range(self.shape[0])], np.float64)
            share = (half + 1) / max(n_b, 1)
        per_link = share * (self.beta.link_count + n_b) + self.norb**2
        return links * per_link + share * (same * n_b + (n_b + len(self.beta.tables.hsrc)))

    def diagonal(self) -> np.ndarray:
        """H's diagonal on the targets, shape :attr:`shape`."""
        return rows_kernels.diagonal(self.alpha.tables.hdiag, self.beta.tables.hdiag, self._jvec, self.beta.occ)

    def _spin_pairs(self) -> np.ndarray:
        """S^2's "integrals" for the opposite-spin sum, W[pq, qp] = -1; built once (a Davidson with
        the spin penalty applies S^2 every cycle)."""
        if self._w is None:
            n = self.norb
            w = np.zeros((n * n, n * n))
            p, q = np.divmod(np.arange(n * n), n)
            w[p * n + q, q * n + p] = -1.0
            self._w = w
        return self._w

    def apply_spin_square(self, c: np.ndarray) -> np.ndarray:
        """``S^2 C`` on the targets: (N_b + S_z (S_z + 1)) C - sum_pq E^a_qp E^b_pq C."""
        if self.square:
            return self.apply_spin_square_rows(c, 0, self.shape[0])
        cols, src = self.beta.columns(np.ones(self.shape[1], bool))
        a, b = self.alpha.tables, self.beta.tables
        out = rows_kernels.product(self._coefficients(c), self._spin_pairs(), a, b, self.shape[0], cols, src, False)
        if self.source_shape == self.shape:
            out += self._spin_constant() * self._coefficients(c)
        return out

    def _spin_constant(self) -> float:
        """S^2's diagonal constant N_b + S_z (S_z + 1)."""
        sz = 0.5 * (self.nelec[0] - self.nelec[1])
        return self.nelec[1] + sz * (sz + 1.0)

    def apply_spin_square_rows(self, c: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Alpha rows ``start:stop`` of :meth:`apply_spin_square` (square operator), the same bits
        (the spin penalty of a Davidson spread over MPI ranks needs them as :meth:`apply_rows`)."""
        c = self._coefficients(c)
        start, stop = self._square_rows(start, stop)
        out = rows_kernels.square_opposite(c, self._spin_pairs(), self.alpha.tables, self.beta.tables, False,
                                           start, stop)  # fmt: skip
        out += self._spin_constant() * c[start:stop]
        return out

    def pairs_mirror(self, c: np.ndarray) -> bool:
        """Whether the EN-PT2 terms of (x, y) and (y, x) are equal for ``c``: one set of source
        and of target strings for both spins, equal electrons, and ``c = c^T`` to the last bit
        (the ``direct`` solver's singlets). :meth:`pt2_rows` may then sum each pair once."""
        c = np.asarray(c).reshape(self.source_shape)
        return bool(self._one_string_set and np.array_equal(c, c.T))

    def pt2_rows(
        self,
        c: np.ndarray,
        e_var: float,
        rows: np.ndarray | None = None,
        w_b: np.ndarray | None = None,
        paired: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per alpha target row (all, or ``rows``), the sum over its determinants outside the
        sources' product of w_b <x|H|C>^2 / (e_var - H_xx), the number of terms (nonzero
        ``<x|H|C>``, H_xx above e_var), and the number of connected determinants with H_xx
        below e_var (intruders: left out of the sum, where their term would change sign).

        Row by row, one thread per row: nothing of the size of the targets' product is
        stored, and each row's sum is exact. The rows partition the whole EN-PT2 sum, which
        is what a sampled estimate draws from. ``paired`` (where :meth:`pairs_mirror` holds,
        without column weights): each row sums the columns at or above its own rank in a fixed
        pseudo-random order of the target strings, every pair (x, y), (y, x) once and counted
        twice: the same sum over all rows at about half the columns per row, for a sum over
        every row (a sampled estimate draws from the unpaired rows: measured on H2O/6-31G over
        100 seeds, the paired rows' larger spread took 54 % more draws, 13 % more rows and
        18 % more time to the same interval).
        """
        rows = np.arange(self.shape[0]) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
        paired = paired and w_b is None and self.pairs_mirror(c)
        w_b = np.ones(self.shape[1]) if w_b is None else np.ascontiguousarray(w_b, dtype=np.float64)
        source_col = self.beta.ident >= 0
        linked = np.diff(self.beta.tables.lptr) > 0
        col_sets = (
            *self.beta.columns(~source_col),
            *self.beta.columns(source_col | linked),
            *self.beta.columns(source_col),
        )
        a, b = self.alpha.tables, self.beta.tables
        order = _pair_order(self.alpha.targets) if paired else np.zeros(0, np.int64)
        c = self._coefficients(c)
        return rows_kernels.pt2_rows(c, self._eri2, a, b, self._jvec, self.beta.occ, w_b, float(e_var), col_sets,
                                     rows, order)  # fmt: skip

    def pt2(self, c: np.ndarray, e_var: float, w_a: np.ndarray, w_b: np.ndarray) -> tuple[float, int]:
        """The weighted sum over every row: ``sum_x w_a[x] (row sum of x)``, and the number of terms."""
        sums, counts, _ = self.pt2_rows(c, e_var, None, w_b)
        return float(np.sum(np.asarray(w_a, dtype=np.float64) * sums)), int(np.sum(counts))
