"""The determinant cap of the subspace (``subspace.max_size``): an older cap kept for configs that set it.

Above ``max_size`` determinants the ones with the smallest ``max(|c|^2 in the teacher,
count share)`` go; HF and this iteration's expansion determinants stay. The string cap
(``subspace.max_strings``), the one to use, is part of the expansion plan
(:func:`hinqs.subspace.expansion.plan_strings`).
"""

from __future__ import annotations

import numpy as np

from hinqs.io.determinants import Determinants, hartree_fock_strings
from hinqs.io.files import GroundState, check_state


def teacher_weights(teacher: GroundState | None, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """|c|^2 (normalised) of each determinant in the teacher state; 0 where it is outside."""
    out = np.zeros(len(alpha))
    if teacher is None:
        return out
    prob = teacher.amplitudes**2
    prob = prob / prob.sum()
    ia = np.searchsorted(teacher.strs_a, alpha)
    ib = np.searchsorted(teacher.strs_b, beta)
    ia_c, ib_c = np.minimum(ia, len(teacher.strs_a) - 1), np.minimum(ib, len(teacher.strs_b) - 1)
    inside = (teacher.strs_a[ia_c] == alpha) & (teacher.strs_b[ib_c] == beta)
    out[inside] = prob[ia_c[inside], ib_c[inside]]
    return out


def cap_subspace(
    subspace: Determinants,
    max_size: int,
    norb: int,
    nelec: tuple[int, int],
    teacher: GroundState | None = None,
    keep_alpha: np.ndarray | None = None,
    keep_beta: np.ndarray | None = None,
) -> Determinants:
    """At most ``max_size`` determinants: evict the lowest ``max(|c|^2, count share)``; HF and ``keep`` stay."""
    if teacher is not None:
        check_state(teacher, norb, nelec)
    if max_size <= 0 or len(subspace) <= max_size:
        return subspace
    counts = subspace.weights()
    score = np.maximum(teacher_weights(teacher, subspace.alpha, subspace.beta), counts / max(counts.sum(), 1))
    hf_a, hf_b = hartree_fock_strings(norb, nelec)
    protected = (subspace.alpha == np.uint64(hf_a)) & (subspace.beta == np.uint64(hf_b))
    if keep_alpha is not None and len(keep_alpha):
        pairs = set(zip(keep_alpha.tolist(), keep_beta.tolist(), strict=True))
        protected |= np.array([p in pairs for p in zip(subspace.alpha.tolist(), subspace.beta.tolist(), strict=True)])
    score = np.where(protected, np.inf, score)
    order = np.argsort(-score, kind="stable")[: max(max_size, int(protected.sum()))]
    order = np.sort(order)
    return Determinants(subspace.alpha[order], subspace.beta[order], counts[order])
