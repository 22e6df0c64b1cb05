"""Accuracy options of the cumulative subspace: PT2-ranked string expansion and a size cap.

Both act in ``hinqs subspace`` and are off by default (``subspace.expansion.strings: 0``,
``subspace.max_size: 0``), in which case the subspace is exactly the previous one + samples
+ HF. (Below, "basis" is the determinant set being grown.)

Expansion (deterministic, no randomness). SQD diagonalises in the product space of a
batch's alpha x beta strings, so what limits accuracy is which *strings* the basis holds.
From the previous iteration's teacher state (the best batch's ground state |Psi> over
strings ``S_a x S_b``):

0. at the first iteration (no teacher yet) the HF determinant is the teacher;
1. take the ``top_strings`` strings of each spin with the largest marginal weight
   (sum of |c|^2 over the other spin) and generate all their single and double
   same-spin excitations; the candidates are those not already in the teacher's strings;
2. score each candidate string ``x`` (alpha, say) by the Epstein-Nesbet second-order
   energy it would bring, ``sum_b |<x b|H|Psi>|^2 / (H_{xb,xb} - E)``, with ``b`` over
   the ``partner_strings`` heaviest beta strings. ``H|Psi>`` is one ``contract_2e`` of
   PySCF's selected CI in the product space ``(S_a + candidates) x top partners`` with
   Psi embedded (zero on the candidates) -- exact matrix elements, no sampling;
3. add the ``strings`` best-scoring candidates to the basis, each as the determinant
   ``(x, b*)`` with ``b*`` its largest-contribution partner (beta strings likewise as
   ``(a*, x)``). For closed shells one string set serves both spins, so the candidates
   are ranked once. The added determinants get the largest count present in the basis,
   so that weighted batch draws take them almost surely.

Cap (``subspace.max_size``): when the grown basis holds more determinants, keep the
``max_size`` with the largest score ``max(|c|^2 in the teacher state, count / total
count)`` -- the smallest-amplitude, lowest-count determinants are evicted; the HF
determinant and this iteration's expansion determinants always stay. Ties break on the
(alpha, beta) order, so the result is deterministic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from hinqs.determinants import Determinants, hartree_fock_strings, unique_determinants
from hinqs.errors import InputError
from hinqs.files import read_state
from hinqs.settings import ExpansionSettings
from hinqs.validation import check_strings


@dataclass(frozen=True)
class TeacherState:
    """A ground state over the product space ``strs_a x strs_b`` (amplitudes ``[na, nb]``)."""

    strs_a: np.ndarray
    strs_b: np.ndarray
    amplitudes: np.ndarray
    source: str = "teacher state"  # the file it came from, for error messages


def read_teacher_state(
    path: str | os.PathLike[str], *, norb: int | None = None, nelec: tuple[int, int] | None = None
) -> TeacherState:
    """The previous iteration's ground state (``sqd/state.npz``) with its strings sorted.

    With ``norb`` and ``nelec`` (the run's Hamiltonian) a state of another system is refused
    here; :func:`select_strings` and :func:`cap_basis` check it again against what they are given.
    """
    state = read_state(path)
    strs_a, strs_b, amps = state.ci_strs_a, state.ci_strs_b, state.amplitudes
    if not np.all(np.isfinite(amps)):
        raise InputError(f"{path}: amplitudes contain non-finite values")
    oa, ob = np.argsort(strs_a, kind="stable"), np.argsort(strs_b, kind="stable")
    teacher = TeacherState(strs_a[oa], strs_b[ob], amps[np.ix_(oa, ob)], source=str(path))
    if norb is not None and nelec is not None:
        check_teacher(teacher, norb, nelec)
    return teacher


def check_teacher(teacher: TeacherState, norb: int, nelec: tuple[int, int]) -> None:
    """A teacher state must be of the run's system: strings within ``norb`` holding ``nelec`` electrons.

    A state of another system would otherwise be expanded into determinants of the wrong
    electron count, which only the diagonalisation would trip over.
    """
    check_strings(teacher.strs_a, norb, nelec[0], f"{teacher.source}: ci_strs_a")
    check_strings(teacher.strs_b, norb, nelec[1], f"{teacher.source}: ci_strs_b")


def hartree_fock_teacher(norb: int, nelec: tuple[int, int]) -> TeacherState:
    """The HF determinant as a teacher: what expansion starts from at the first iteration."""
    hf_a, hf_b = hartree_fock_strings(norb, nelec)
    return TeacherState(np.array([hf_a], np.uint64), np.array([hf_b], np.uint64), np.ones((1, 1)))


def excitations(parents: np.ndarray, norb: int) -> np.ndarray:
    """Sorted unique strings that are single or double excitations of any parent (parents excluded)."""
    out: list[np.ndarray] = []
    for parent in np.asarray(parents, dtype=np.uint64).tolist():
        occ = [i for i in range(norb) if parent >> i & 1]
        vir = [i for i in range(norb) if not parent >> i & 1]
        singles = [(1 << i) | (1 << a) for i in occ for a in vir]
        occ_pairs = [(1 << i) | (1 << j) for i, j in combinations(occ, 2)]
        vir_pairs = [(1 << a) | (1 << b) for a, b in combinations(vir, 2)]
        doubles = [o | v for o in occ_pairs for v in vir_pairs]
        out.append(np.array([parent ^ m for m in singles + doubles], dtype=np.uint64))
    if not out:
        return np.zeros(0, np.uint64)
    return np.setdiff1d(np.unique(np.concatenate(out)), np.asarray(parents, np.uint64))


def _top(strings: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-weight, kind="stable")[:k]
    return strings[order]


def _pt2_scores(
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    strs_a: np.ndarray,
    strs_b: np.ndarray,
    amps: np.ndarray,
    candidates: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """EN-PT2 score of each candidate alpha string against beta strings ``strs_b``, and its best partner.

    ``amps`` is Psi on ``strs_a x strs_b`` (both sorted ascending, candidates disjoint from strs_a).
    """
    from pyscf import ao2mo
    from pyscf.fci import direct_spin1, selected_ci

    norb = hcore.shape[0]
    big_a = np.concatenate([strs_a, candidates])
    order = np.argsort(big_a, kind="stable")
    big_a = big_a[order]
    psi = np.zeros((len(big_a), len(strs_b)))
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    psi[position[: len(strs_a)]] = amps
    cand_rows = position[len(strs_a) :]
    strs = (big_a.astype(np.int64), np.asarray(strs_b).astype(np.int64))
    norm2 = float(np.vdot(amps, amps))
    h2e = ao2mo.restore(1, direct_spin1.absorb_h1e(hcore, eri, norb, nelec, 0.5), norb)
    solver = selected_ci.SelectedCI()
    link = solver.gen_linkstr(norb, nelec, tril=True, ci_strs=strs)
    hc = np.asarray(solver.contract_2e(h2e, selected_ci._as_SCIvector(psi, strs), norb, nelec, link))
    hc = hc.reshape(psi.shape)
    energy = float(np.vdot(psi, hc)) / norm2
    hdiag = np.asarray(selected_ci.make_hdiag(hcore, eri, strs, norb, nelec)).reshape(psi.shape)
    rows_hc = hc[cand_rows] ** 2 / norm2
    denom = np.maximum(hdiag[cand_rows] - energy, 1e-3)
    contrib = rows_hc / denom
    return contrib.sum(axis=1), np.asarray(strs_b)[np.argmax(contrib, axis=1)]


def select_strings(
    teacher: TeacherState,
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    settings: ExpansionSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """New determinants ``(alpha, beta)`` carrying the best PT2-ranked new strings of the teacher."""
    if settings.strings <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    hcore, eri = np.asarray(hcore, dtype=np.float64), np.asarray(eri, dtype=np.float64)
    norb = hcore.shape[0]
    check_teacher(teacher, norb, nelec)
    prob = teacher.amplitudes**2
    w_a, w_b = prob.sum(axis=1), prob.sum(axis=0)
    closed = nelec[0] == nelec[1] and np.array_equal(teacher.strs_a, teacher.strs_b)
    spins = [0] if closed else [0, 1]
    new_alpha: list[np.ndarray] = []
    new_beta: list[np.ndarray] = []
    for spin in spins:
        if spin == 0:
            own, own_w, other, other_w, amps, ne = teacher.strs_a, w_a, teacher.strs_b, w_b, teacher.amplitudes, nelec
        else:
            own, own_w, other, other_w = teacher.strs_b, w_b, teacher.strs_a, w_a
            amps, ne = teacher.amplitudes.T, (nelec[1], nelec[0])
        parents = _top(own, own_w + (w_b if closed else 0.0), settings.top_strings)
        candidates = np.setdiff1d(excitations(parents, norb), own)
        if len(candidates) == 0:
            continue
        keep = np.sort(np.argsort(-other_w, kind="stable")[: settings.partner_strings])
        scores, partners = _pt2_scores(hcore, eri, ne, own, other[keep], amps[:, keep], candidates)
        best = np.argsort(-scores, kind="stable")[: settings.strings]
        chosen, partner = candidates[best], partners[best]
        if spin == 0:
            new_alpha.append(chosen)
            new_beta.append(partner)
        else:
            new_alpha.append(partner)
            new_beta.append(chosen)
    if not new_alpha:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    return np.concatenate(new_alpha).astype(np.uint64), np.concatenate(new_beta).astype(np.uint64)


def expand_basis(basis: Determinants, alpha: np.ndarray, beta: np.ndarray) -> Determinants:
    """The basis plus the given determinants, each weighted with the basis's largest count."""
    if len(alpha) == 0:
        return basis
    weight = int(basis.weights().max()) if len(basis) else 1
    a, b, c = unique_determinants(
        np.concatenate([basis.alpha, alpha.astype(np.uint64)]),
        np.concatenate([basis.beta, beta.astype(np.uint64)]),
        np.concatenate([basis.weights(), np.full(len(alpha), weight, np.int64)]),
    )
    return Determinants(a, b, c)


def teacher_weights(teacher: TeacherState | None, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
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


def cap_basis(
    basis: Determinants,
    max_size: int,
    norb: int,
    nelec: tuple[int, int],
    teacher: TeacherState | None = None,
    keep_alpha: np.ndarray | None = None,
    keep_beta: np.ndarray | None = None,
) -> Determinants:
    """At most ``max_size`` determinants: evict the lowest ``max(|c|^2, count share)``; HF and ``keep`` stay."""
    if teacher is not None:
        check_teacher(teacher, norb, nelec)
    if max_size <= 0 or len(basis) <= max_size:
        return basis
    counts = basis.weights()
    score = np.maximum(teacher_weights(teacher, basis.alpha, basis.beta), counts / max(counts.sum(), 1))
    hf_a, hf_b = hartree_fock_strings(norb, nelec)
    protected = (basis.alpha == np.uint64(hf_a)) & (basis.beta == np.uint64(hf_b))
    if keep_alpha is not None and len(keep_alpha):
        pairs = set(zip(keep_alpha.tolist(), keep_beta.tolist(), strict=True))
        protected |= np.array([p in pairs for p in zip(basis.alpha.tolist(), basis.beta.tolist(), strict=True)])
    score = np.where(protected, np.inf, score)
    order = np.argsort(-score, kind="stable")[: max(max_size, int(protected.sum()))]
    order = np.sort(order)
    return Determinants(basis.alpha[order], basis.beta[order], counts[order])
