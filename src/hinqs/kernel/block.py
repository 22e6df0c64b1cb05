"""A block of alpha rows of the square product, computed from the coefficient rows it reaches.

A rank of a distributed Davidson holds rows ``start:stop`` of every vector, not the whole
vector. Its rows of ``H C`` read its own rows of ``C`` and the rows their alpha links and
alpha same-spin entries reach (the *halo*). :class:`RowBlock` lists the halo rows once and
renumbers the block's alpha tables into a compact matrix ``[own rows; halo rows]``; the
row kernels then run on that matrix with the same tables in the same order, so every
element is summed exactly as :meth:`ProductHamiltonian.apply_rows` sums it: the same bits.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from hinqs.kernel import rows as rows_kernels
from hinqs.kernel.links import SideTables


class RowBlock:
    """Rows ``start:stop`` of a square :class:`~hinqs.kernel.ProductHamiltonian`, read from a compact matrix.

    ``halo`` are the global alpha rows outside the block that the block's links reach,
    ascending; the compact matrix holds the block's rows first, then the halo's, in that
    order (``compact(...)`` builds it from the whole matrix, a distributed caller from
    its own rows and the rows it received).
    """

    def __init__(self, ham: Any, start: int, stop: int, upper: bool = False) -> None:
        start, stop = ham._square_rows(start, stop)
        if upper and not ham.mirrored_spins:
            raise ValueError("half of a product holds all of it only where the alpha and beta strings are one set")
        self.ham = ham
        self.start, self.stop = start, stop
        self.upper = upper
        a = ham.alpha.tables
        lo_l, hi_l = int(a.lptr[start]), int(a.lptr[stop])
        lo_h, hi_h = int(a.hptr[start]), int(a.hptr[stop])
        reached = np.union1d(a.lsrc[lo_l:hi_l], a.hsrc[lo_h:hi_h]).astype(np.int64)
        self.halo = reached[(reached < start) | (reached >= stop)]
        position = np.full(ham.shape[0], -1, np.int64)
        position[start:stop] = np.arange(stop - start)
        position[self.halo] = (stop - start) + np.arange(len(self.halo))
        n = stop - start
        ident = np.arange(n, dtype=np.int64)
        self.tables = SideTables(
            ident,
            a.hptr[start : stop + 1] - lo_h,
            position[a.hsrc[lo_h:hi_h]],
            a.hval[lo_h:hi_h],
            a.hdiag[start:stop],
            a.lptr[start : stop + 1] - lo_l,
            position[a.lsrc[lo_l:hi_l]],
            a.lpair[lo_l:hi_l],
            a.lsign[lo_l:hi_l],
        )

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def _upper_from(self) -> int:
        """The kernels' ``upper_from``: the block's first global row when each row computes only its
        window of half the columns (:func:`hinqs.kernel.rows.half_width`), else -1 (every column)."""
        return self.start if self.upper else -1

    def mirror(self, out: np.ndarray) -> np.ndarray:
        """``out`` (the block's rows, in place) with the elements of the block's own square that its
        rows do not compute copied from those that do; the other columns' come from the
        other blocks (:meth:`fill_from`, :class:`hinqs.sqd.distributed.SpreadHamiltonian`)."""
        rows_kernels.mirror_block(out, self.start)
        return out

    def fill_from(self, out: np.ndarray, other: np.ndarray, other_start: int) -> np.ndarray:
        """``out`` (in place) with the columns of another block's rows (``other``: those rows at this
        block's columns, starting at global row ``other_start``) that this block's rows do not compute."""
        rows_kernels.fill_transposed(out, np.ascontiguousarray(other), self.start, other_start)
        return out

    def compact(self, c: np.ndarray) -> np.ndarray:
        """The compact matrix from the whole coefficient matrix (a one-process check of the bits)."""
        c = np.asarray(c, dtype=np.float64).reshape(self.ham.shape)
        return np.ascontiguousarray(np.concatenate([c[self.start : self.stop], c[self.halo]]))

    def apply(self, compact: np.ndarray) -> np.ndarray:
        """The block's rows of ``H C``, shape ``(rows, K_b)``: :meth:`ProductHamiltonian.apply_rows`' bits,
        in one pass (:func:`hinqs.kernel.rows.square_rows`); with ``upper`` only each row's
        window of half the columns is set (those bits), the rest left for :meth:`mirror`."""
        compact = np.ascontiguousarray(compact, dtype=np.float64)
        return rows_kernels.square_rows(compact, self.ham._eri2, self.tables, self.ham.beta.tables, self.rows,
                                        self._upper_from, numba.get_num_threads())  # fmt: skip

    def apply_spin_square(self, compact: np.ndarray) -> np.ndarray:
        """The block's rows of ``S^2 C``: :meth:`ProductHamiltonian.apply_spin_square_rows`' bits."""
        ham = self.ham
        compact = np.ascontiguousarray(compact, dtype=np.float64)
        out = rows_kernels.square_opposite(compact, ham._spin_pairs(), self.tables, ham.beta.tables, False,
                                           0, self.rows, self._upper_from)  # fmt: skip
        out += ham._spin_constant() * compact[: self.rows]
        return out

    def diagonal(self) -> np.ndarray:
        """The block's rows of H's diagonal (:meth:`ProductHamiltonian.diagonal`'s bits)."""
        ham = self.ham
        return rows_kernels.diagonal(self.tables.hdiag, ham.beta.tables.hdiag, ham._jvec[self.start : self.stop],
                                     ham.beta.occ)  # fmt: skip
