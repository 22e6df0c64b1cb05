"""hinqs' own one-root Davidson, over vectors held as row blocks: the same bits on any number of ranks.

A vector of the product space ``K_a x K_b`` is cut into *chunks* of whole alpha rows at
fixed positions (:data:`CHUNK_ELEMENTS` per chunk, whatever the rank count); each rank
holds a contiguous run of chunks (split by the rows' cost), i.e. its rows of every Davidson
vector. Everything the algorithm does is then either elementwise (axpys, the diagonal
preconditioner: the same bits wherever an element lives) or a reduction, and every
reduction (dot products, norms, the projected matrix) is a sum of per-chunk partial sums
(:mod:`hinqs.kernel.chunks`), gathered and added in chunk order. The small projected
eigenproblem then meets the same numbers on every rank. So a solve on 1, 2, 3 or 4 ranks,
and the one-process ``direct`` solve (a one-rank :class:`Group`), give the same bits.

The algorithm is the textbook one PySCF's ``lib.davidson1`` follows for one root: the
diagonal preconditioner with PySCF's level shift, Gram-Schmidt (twice) against the trial
space, a restart onto the current Ritz vector when the space reaches :data:`MAX_SPACE`,
convergence when the Ritz value moves less than ``conv_tol`` and the residual norm is below
``sqrt(conv_tol)``. A solve that reaches ``max_cycle`` unconverged is continued from its
current Ritz vector (a restart), up to :data:`CONTINUE_FACTOR` x ``max_cycle`` cycles in
all; each continuation and a solve that still ends unconverged are said on the screen.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hinqs.io.determinants import spin_of_square
from hinqs.kernel.chunks import chunk_dots, chunk_occupations, ordered_sum

CHUNK_ELEMENTS = 4096  # elements per reduction chunk (whole alpha rows): fixed, never the rank count's
LEVEL_SHIFT = 1e-3  # the preconditioner's shift, PySCF's FCI default
MAX_SPACE = 12  # trial vectors before a restart onto the Ritz vector, PySCF's FCI default
LINDEP = 1e-14  # a new trial vector with |t|^2 below this after orthogonalisation adds nothing (PySCF's)
CONTINUE_FACTOR = 4  # a solve unconverged at max_cycle continues, up to this many times max_cycle cycles
PROJECTION_STEPS = 4  # Lowdin factors (S^2 - s'(s'+1)) applied to a guess, the spins nearest the target
MIN_PROJECTED = 1e-6  # a projected guess with less of its norm left is no guess (a pure other spin)


class Group:
    """The ranks that share the vectors: an MPI communicator, or this process alone (``None``)."""

    def __init__(self, comm: Any | None = None) -> None:
        self.comm = comm
        self.size = 1 if comm is None else int(comm.Get_size())
        self.rank = 0 if comm is None else int(comm.Get_rank())

    def allgather(self, value: Any) -> list[Any]:
        return [value] if self.comm is None else self.comm.allgather(value)

    def bcast(self, value: Any) -> Any:
        return value if self.comm is None else self.comm.bcast(value, root=0)


def chunk_bounds(shape: tuple[int, int]) -> np.ndarray:
    """Row bounds of the reduction chunks: :data:`CHUNK_ELEMENTS` worth of whole alpha rows each."""
    per_chunk = max(1, CHUNK_ELEMENTS // max(1, shape[1]))
    return np.append(np.arange(0, shape[0], per_chunk), shape[0]).astype(np.int64)


class RowSpace:
    """This rank's rows ``start:stop`` of every vector and the chunk-ordered reductions over all ranks.

    ``rank_chunks[r]:rank_chunks[r + 1]`` are the chunks rank ``r`` holds (contiguous, in
    rank order), so the gathered per-chunk partials come back in chunk order.
    """

    def __init__(self, group: Group, shape: tuple[int, int], rank_chunks: np.ndarray | None = None) -> None:
        self.group = group
        self.shape = (int(shape[0]), int(shape[1]))
        self.chunks = chunk_bounds(self.shape)
        if rank_chunks is None:
            rank_chunks = np.array([0, len(self.chunks) - 1], np.int64)
        if len(rank_chunks) != group.size + 1:
            raise ValueError(f"{len(rank_chunks) - 1} blocks of chunks for {group.size} ranks")
        self.rank_rows = self.chunks[rank_chunks]
        mine = self.chunks[rank_chunks[group.rank] : rank_chunks[group.rank + 1] + 1]
        self.start, self.stop = int(self.rank_rows[group.rank]), int(self.rank_rows[group.rank + 1])
        self.local_row_bounds = (mine - self.start).astype(np.int64)
        self.local_bounds = self.local_row_bounds * self.shape[1]

    @property
    def local_shape(self) -> tuple[int, int]:
        return (self.stop - self.start, self.shape[1])

    def dots(self, xs: list[np.ndarray], y: np.ndarray) -> np.ndarray:
        """``[x . y for x in xs]`` over the whole vectors (collective): chunk sums added in chunk order."""
        partials = np.empty((len(xs), len(self.local_bounds) - 1))
        flat_y = y.ravel()
        for i, x in enumerate(xs):
            partials[i] = chunk_dots(x.ravel(), flat_y, self.local_bounds)
        return ordered_sum(np.concatenate(self.group.allgather(partials), axis=1))

    def norm(self, x: np.ndarray) -> float:
        return math.sqrt(float(self.dots([x], x)[0]))

    def occupations(self, c: np.ndarray, occ_a: np.ndarray, occ_b: np.ndarray, norb: int) -> np.ndarray:
        """``sum |C|^2 n_p`` for alpha then beta orbitals (``2 norb`` values, unnormalised; collective)."""
        partials = chunk_occupations(c.reshape(self.local_shape), occ_a, occ_b, norb, self.local_row_bounds)
        return ordered_sum(np.concatenate(self.group.allgather(np.ascontiguousarray(partials.T)), axis=1))

    def lowest(self, values: np.ndarray) -> int:
        """The global flat index of the smallest value (the first on ties; collective)."""
        flat = values.ravel()
        mine = (math.inf, -1)
        if flat.size:
            mine = (float(flat.min()), self.start * self.shape[1] + int(flat.argmin()))
        return min(self.group.allgather(mine))[1]

    def unit(self, index: int) -> np.ndarray:
        """The unit vector of the global flat ``index``, this rank's rows."""
        out = np.zeros(self.local_shape[0] * self.local_shape[1])
        local = index - self.start * self.shape[1]
        if 0 <= local < out.size:
            out[local] = 1.0
        return out


@dataclass
class DavidsonResult:
    """This rank's rows of the normalised Ritz vector, its Ritz value and residual, and the cycles run."""

    converged: bool
    vector: np.ndarray
    value: float
    residual: float
    cycles: int


def _combine(weights: np.ndarray, vectors: list[np.ndarray]) -> np.ndarray:
    """``sum_i w_i v_i``, added in order: elementwise, so the same bits on any rank holding the rows."""
    out = weights[0] * vectors[0]
    for w, v in zip(weights[1:], vectors[1:], strict=True):
        out += w * v
    return out


def _orthonormal(space: RowSpace, t: np.ndarray, basis: list[np.ndarray]) -> np.ndarray | None:
    """``t`` orthogonalised against ``basis`` (classical Gram-Schmidt, twice) and normalised; None
    when nothing of it is left (linear dependence)."""
    for _ in range(2):
        t -= _combine(space.dots(basis, t), basis)
    norm = space.norm(t)
    if norm * norm < LINDEP:
        return None
    t /= norm
    return t


def _preconditioned(r: np.ndarray, diagonal: np.ndarray, value: float) -> np.ndarray:
    """PySCF's diagonal preconditioner: ``r / (H_diag - (value - level_shift))``, tiny divisors clamped
    (computed in the divisor's array: one vector, not two)."""
    shifted = diagonal - (value - LEVEL_SHIFT)
    shifted[np.abs(shifted) < 1e-8] = 1e-8
    return np.divide(r, shifted, out=shifted)


def davidson(
    apply: Callable[[np.ndarray], np.ndarray],
    diagonal: np.ndarray,
    x0: np.ndarray,
    space: RowSpace,
    conv_tol: float,
    max_cycle: int,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> DavidsonResult:
    """The lowest eigenpair of the operator ``apply`` (this rank's rows in, this rank's rows out;
    collective), from ``x0`` (this rank's rows of the start vector), preconditioned by
    ``diagonal`` (this rank's rows of the operator's diagonal).

    ``progress`` gets PySCF's callback keys once per cycle (``icyc``, ``max_dx_norm``, ``e``).
    Trial vectors are updated in place where nothing else holds them: a rank's memory is
    the trial space and its images plus a few vectors.
    """
    tolerance = math.sqrt(conv_tol)
    limit = CONTINUE_FACTOR * max_cycle
    basis: list[np.ndarray] = []
    images: list[np.ndarray] = []
    heff = np.zeros((MAX_SPACE, MAX_SPACE))
    t: np.ndarray | None = x0 / space.norm(x0)
    del x0  # the caller passes it without keeping it
    x = ax = t
    value, residual, previous = math.nan, math.inf, math.inf
    cycle, converged = 0, False
    while cycle < limit:
        if basis:
            t = _orthonormal(space, t, basis)
        if t is None:  # the residual adds nothing new: as converged as it will get
            converged = residual < tolerance
            break
        basis.append(t)
        images.append(apply(t))
        k = len(basis)
        column = space.dots(basis, images[-1])
        heff[:k, k - 1] = column
        heff[k - 1, :k] = column
        values, vectors = np.linalg.eigh(heff[:k, :k])
        value, weights = float(values[0]), vectors[:, 0]
        x, ax = _combine(weights, basis), _combine(weights, images)
        r = value * x
        np.subtract(ax, r, out=r)  # ax - value x
        residual = space.norm(r)
        if progress is not None:
            progress({"icyc": cycle, "max_dx_norm": residual, "e": value})
        cycle += 1
        if abs(value - previous) < conv_tol and residual < tolerance:
            converged = True
            break
        previous = value
        if cycle % max_cycle == 0 and cycle < limit:
            print(f"davidson: not converged after {cycle} cycles (|r| {residual:.3g}): continued from its current "
                  f"vector, at most {limit} cycles", file=sys.stderr, flush=True)  # fmt: skip
        if cycle < limit and (k == MAX_SPACE or cycle % max_cycle == 0):  # restart onto the Ritz vector
            norm = space.norm(x)
            basis, images = [x], [ax]
            x /= norm
            ax /= norm
            heff[0, 0] = space.dots(basis, images[0])[0]
        t = _preconditioned(r, diagonal, value)
        del r
        size = space.norm(t)
        if not size > 0:  # a zero residual (the start was exact: a one-determinant space): nothing to add
            converged = residual < tolerance
            break
        t /= size
    if not converged:
        print(f"davidson: not converged within {cycle} cycles ({CONTINUE_FACTOR} x max_cycle = {limit}; "
              f"|r| {residual:.3g}, sqrt(conv_tol) {tolerance:.3g}): the energy is taken unconverged",
              file=sys.stderr, flush=True)  # fmt: skip
    return DavidsonResult(converged, x / space.norm(x), value, residual, cycle)


def spin_projected(
    apply_spin_square: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    space: RowSpace,
    target: float,
    nelec: tuple[int, int],
    norb: int,
) -> np.ndarray | None:
    """``x`` with the spins nearest the target's removed by Lowdin's projector (collective).

    Each factor ``(S^2 - s'(s'+1)) / (S(S+1) - s'(s'+1))`` removes spin ``s'`` (exactly in a
    spin-complete space; mostly in a product space that is not), for the
    :data:`PROJECTION_STEPS` spins nearest ``S`` allowed by the electrons and orbitals. None
    when less than :data:`MIN_PROJECTED` of the norm is left: ``x`` was another spin.
    """
    spin = spin_of_square(target)
    low = 0.5 * abs(nelec[0] - nelec[1])
    high = 0.5 * min(nelec[0] + nelec[1], 2 * norb - nelec[0] - nelec[1])
    others = [s for s in np.arange(low, high + 0.5, 1.0) if abs(s - spin) > 0.25]
    others = sorted(others, key=lambda s: abs(s - spin))[:PROJECTION_STEPS]
    before = space.norm(x)
    if before == 0:
        return None
    for s in others:
        eigen = s * (s + 1.0)
        x = (apply_spin_square(x) - eigen * x) / (target - eigen)
    after = space.norm(x)
    return None if not after > MIN_PROJECTED * before else x / after
