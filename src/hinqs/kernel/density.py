"""One-particle density matrices of a product-space state, from the subspace's own links.

``gamma^sigma_pq = <Psi|a+_p a_q|Psi>`` for ``Psi = sum C[I, J] |I>_alpha |J>_beta``: every
alpha link ``I = E_pq I'`` (sign s) contributes ``s * C[I, :] . C[I', :]``, and likewise the
beta links over columns. The cost is one row dot product per link (about 40 links per
string at 26 orbitals), so the density of a 2-million-determinant state takes a second,
where a product-space contraction would take a Davidson cycle. The natural orbitals of the
run's own state (:mod:`hinqs.chem.rotation`) are built from it.
"""

from __future__ import annotations

import numpy as np

from hinqs.kernel.links import single_links

ROWS_PER_CHUNK = 4096  # links whose row pairs are gathered at once (bounds the work arrays)


def _spin_density(c: np.ndarray, strings: np.ndarray, norb: int, nel: int) -> np.ndarray:
    """``gamma_pq`` of one spin, the rows of ``c`` being that spin's strings (sorted)."""
    links = single_links(strings, strings, norb, nel)
    target = np.repeat(np.arange(len(strings)), np.diff(links.ptr))
    dm = np.zeros(norb * norb)
    for start in range(0, len(target), ROWS_PER_CHUNK):
        stop = start + ROWS_PER_CHUNK
        overlap = np.einsum("ij,ij->i", c[target[start:stop]], c[links.source[start:stop]])
        np.add.at(dm, links.pair[start:stop], links.sign[start:stop] * overlap)
    return dm.reshape(norb, norb)


def one_rdm(
    c: np.ndarray, strs_a: np.ndarray, strs_b: np.ndarray, norb: int, nelec: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(gamma_alpha, gamma_beta), each ``(norb, norb)``, of the state ``c`` over ``strs_a x strs_b``.

    Strings sorted ascending (int64 CI strings); ``c`` need not be normalised: the matrices
    are divided by ``|c|^2``, so their traces are the electron counts.
    """
    strs_a = np.asarray(strs_a, np.int64)
    strs_b = np.asarray(strs_b, np.int64)
    c = np.ascontiguousarray(np.asarray(c, np.float64).reshape(len(strs_a), len(strs_b)))
    norm = float(np.vdot(c, c))
    dm_a = _spin_density(c, strs_a, norb, int(nelec[0]))
    dm_b = _spin_density(np.ascontiguousarray(c.T), strs_b, norb, int(nelec[1]))
    return dm_a / norm, dm_b / norm
