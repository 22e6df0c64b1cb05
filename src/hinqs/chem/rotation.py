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


def natural_rotation(dm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(occupations, U) of a spin-summed density: ``dm = U diag(n) U^T``, n descending.

    Each column's sign is fixed (its largest-magnitude entry positive, the first of equal
    ones) and equal occupations keep their eigensolver order, so the same density gives the
    same orbitals on every machine; ``U`` is as close to the identity's columns as the
    density allows when the orbitals are already natural.
    """
    dm = np.asarray(dm, np.float64)
    sym = 0.5 * (dm + dm.T)
    occupations, vectors = np.linalg.eigh(sym)
    order = np.argsort(-occupations, kind="stable")
    occupations, vectors = occupations[order], vectors[:, order]
    lead = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[lead, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return occupations, vectors * signs


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
