"""Natural orbitals of a variational state and the active-space integrals rotated into them.

A selected CI converges fastest in the orbitals that make its own state compact: the
eigenvectors of the state's spin-summed one-particle density (natural orbitals), ordered by
occupation. Selected-CI codes (CIPSI, SHCI) rediagonalise in the natural orbitals of a
first variational run; hinqs does the same inside the loop (``orbitals_refresh``). The
rotation mixes active orbitals among themselves only, so the core energy, the FCI energy and
every reference on the active integrals are unchanged: only the basis the strings are
written in moves.
"""

from __future__ import annotations

import numpy as np

DEGENERATE = 1e-6  # occupations closer than this span one degenerate block (symmetry partners)


def natural_rotation(dm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(occupations, U): ``dm = U diag(n) U^T``, each natural orbital in the column of the
    current orbital it resembles most.

    The loop carries its strings over by label, so a natural orbital must take the place of
    the orbital it came from: ordered by occupation instead, two virtuals that swap places
    would turn every string holding one of them into a different determinant. The columns
    are therefore assigned to the current orbitals by maximum overlap (an optimal
    assignment on ``U^2``); within a block of equal occupations (symmetry partners such as
    a pi pair, whose eigenvectors any rotation of the block would do) the block is rotated
    onto the orbitals it is assigned to (orthogonal Procrustes); each column's sign makes its
    diagonal element positive. The result depends on the density alone, and is the identity
    when the orbitals are already natural.
    """
    from scipy.optimize import linear_sum_assignment

    dm = np.asarray(dm, np.float64)
    occupations, vectors = np.linalg.eigh(0.5 * (dm + dm.T))
    order = np.argsort(-occupations, kind="stable")
    occupations, vectors = occupations[order], vectors[:, order]
    starts = np.flatnonzero(np.r_[True, np.abs(np.diff(occupations)) > DEGENERATE])
    for start, stop in zip(starts, np.r_[starts[1:], len(occupations)], strict=True):
        if stop - start > 1:  # a degenerate block: the basis of it nearest the orbitals it covers
            block = vectors[:, start:stop]
            covered = np.sort(np.argsort(-(block**2).sum(axis=1), kind="stable")[: stop - start])
            left, _, right = np.linalg.svd(block[covered])
            vectors[:, start:stop] = block @ (right.T @ left.T)  # rows `covered` become symmetric, PSD
    rows, cols = linear_sum_assignment(-(vectors**2))
    u = np.zeros_like(vectors)
    n = np.zeros_like(occupations)
    u[:, rows] = vectors[:, cols]
    n[rows] = occupations[cols]
    signs = np.sign(np.diag(u))
    signs[signs == 0] = 1.0
    return n, u * signs


def rotate_integrals(hcore: np.ndarray, eri: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``h' = U^T h U`` and ``(pq|rs)' = sum U_ap U_bq U_cr U_ds (ab|cd)`` (chemists' notation)."""
    u = np.asarray(u, np.float64)
    h = u.T @ np.asarray(hcore, np.float64) @ u
    g = np.asarray(eri, np.float64)
    n = u.shape[0]
    # one index at a time: four (n^4 x n) products instead of an n^8 einsum
    g = (u.T @ g.reshape(n, -1)).reshape(n, n, n, n)
    g = np.einsum("aqrs,qb->abrs", g, u, optimize=True)
    g = np.einsum("pqcs,cr->pqrs", g, u, optimize=True)
    g = g.reshape(-1, n) @ u
    return 0.5 * (h + h.T), np.ascontiguousarray(g.reshape(n, n, n, n))
