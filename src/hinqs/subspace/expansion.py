"""How the cumulative subspace grows and what it keeps: PT2-ranked string expansion and a string cap.

Both act in ``hinqs subspace``; their ``null`` defaults are derived from the system's size
(:mod:`hinqs.loop.defaults`), and 0 turns either off (``subspace.expansion.strings: 0``,
``subspace.max_strings: 0``), in which case the subspace is exactly the previous one +
samples + HF.

SQD diagonalises in the product space of a batch's alpha x beta strings, so what limits
accuracy and cost is which *strings* the subspace holds. Everything below works on strings,
from the previous iteration's teacher state (the best batch's ground state |Psi> over
``S_a x S_b``; at the first iteration the HF determinant):

1. candidates: the single and double same-spin excitations of the teacher's
   ``top_strings`` heaviest strings (marginal weight, sum of |c|^2 over the other spin),
   plus every string of the grown subspace the teacher does not hold (this iteration's NQS
   samples);
2. each candidate ``x`` (alpha, say) is scored by the Epstein-Nesbet second-order energy it
   would bring, ``sum_b |<x b|H|Psi>|^2 / (H_{xb,xb} - E)``, with ``b`` over the
   ``partner_strings`` heaviest beta strings *and* the single excitations of the few
   heaviest (without those, single strings score zero against an HF-like teacher by
   Brillouin's theorem and opposite-spin doubles are never found). One rectangular product
   of hinqs' kernel from Psi into ``(S_a + candidates) x partners``: exact matrix elements,
   no sampling, deterministic;
3. the ``strings`` best candidates not yet in the subspace join it, each as the determinant
   ``(x, b*)`` with ``b*`` its largest-contribution partner. For closed shells one string
   set serves both spins, so the candidates are ranked once;
4. the cap (``max_strings``): when the subspace spans more strings, keep those of largest
   *importance*, both in Ha: for a teacher string, the energy it would cost if dropped,
   ``sum_b |c_xb|^2 (H_xb,xb - E)``; for any other string, its PT2 gain. A string carrying
   weight thus leaves only for one expected to bring more; HF always stays. Determinants
   with an evicted string go; a kept string left without a determinant is re-attached to
   its heaviest partner. With the whole subspace in one batch, the next subspace holds every
   kept string, so the energy does not rise. A string with no score (zero PT2: a sampled
   string not connected to the state) is dropped when the cap binds rather than ranked by
   its integer value, and strings of equal score (symmetry partners) are added and kept
   together or not at all (:mod:`hinqs.subspace.ranking`), so the last bits of the state
   never decide.

``subspace.max_size`` (an older cap on determinants, evicting by ``max(|c|^2, count share)``;
HF and this iteration's expansion determinants stay) is kept for configs that set it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from hinqs.io.determinants import Determinants, closed_shell, hartree_fock_strings, unique_determinants
from hinqs.io.files import GroundState, check_state, read_state, square_sums
from hinqs.subspace.excite import excited
from hinqs.subspace.ranking import top_groups
from hinqs.subspace.settings import ExpansionSettings


def read_teacher_state(
    path: str | os.PathLike[str], *, norb: int | None = None, nelec: tuple[int, int] | None = None
) -> GroundState:
    """The previous iteration's ground state (``sqd/state.npz``) with its strings sorted.

    With ``norb`` and ``nelec`` (the run's Hamiltonian) a state of another system is refused
    here; :func:`plan_strings` and :func:`cap_subspace` check it again against what they are given.
    """
    return read_state(path, sort=True, norb=norb, nelec=nelec)


def hartree_fock_teacher(
    norb: int, nelec: tuple[int, int], references: list[tuple[int, int]] | None = None
) -> GroundState:
    """The first reference determinant as a teacher: what expansion starts from at the first iteration.

    ``references`` lists the determinants prepare found, the lowest UHF's determinant first
    (:func:`hinqs.io.hamiltonian.reference_strings`); None is the aufbau HF determinant. A
    broken-symmetry determinant (a, b) of N_alpha = N_beta teaches with its spin-flip partner
    (b, a), equal weights: the symmetric (singlet-like, as PySCF's singlet CI matrices are)
    combination over one string set, so the expansion ranks one closed-shell channel under
    one cap, as the subspace's batches merge both spins' strings (a lone (a, b) would take
    the open-shell path: one ranking and one cap per spin)."""
    ref_a, ref_b = references[0] if references else hartree_fock_strings(norb, nelec)
    if nelec[0] == nelec[1] and ref_a != ref_b:
        strings = np.array(sorted((ref_a, ref_b)), np.uint64)
        return GroundState(strings, strings.copy(), np.array([[0.0, 1.0], [1.0, 0.0]]) / np.sqrt(2.0))
    return GroundState(np.array([ref_a], np.uint64), np.array([ref_b], np.uint64), np.ones((1, 1)))


def excitations(parents: np.ndarray, norb: int, *, doubles: bool = True) -> np.ndarray:
    """Sorted unique strings that are single (and double) excitations of any parent (parents
    excluded), enumerated by :func:`hinqs.subspace.excite.excited`."""
    parents = np.asarray(parents, dtype=np.uint64)
    return np.setdiff1d(excited(parents, norb, doubles=doubles), parents)


def _top(strings: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-weight, kind="stable")[:k]
    return strings[order]


def h_on_block(
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    strs_a: np.ndarray,
    strs_b: np.ndarray,
    amps: np.ndarray,
    candidates: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """H|Psi> and H's diagonal over ``(strs_a + candidates) x strs_b``, Psi living on ``strs_a x strs_b``.

    ``amps`` is Psi restricted to ``strs_a x strs_b`` (both sorted ascending, candidates
    disjoint from strs_a). Returns ``hc`` and ``hdiag`` (rows: the merged, sorted alpha
    strings), those rows' strings, and the row of each candidate. One rectangular product of
    :class:`hinqs.kernel.ProductHamiltonian` from Psi's strings into the enlarged rows:
    exact matrix elements, nothing embedded.
    """
    from hinqs.kernel import ProductHamiltonian

    big_a = np.concatenate([strs_a, candidates])
    order = np.argsort(big_a, kind="stable")
    big_a = big_a[order]
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    cand_rows = position[len(strs_a) :]
    ham = ProductHamiltonian(hcore, eri, nelec, strs_a, strs_b, targets_a=big_a)
    return ham.apply(amps), ham.diagonal(), big_a, cand_rows


def _h_and_diagonal(
    hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], strs: tuple[np.ndarray, np.ndarray], psi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """H|psi> and H's diagonal over the product space ``strs[0] x strs[1]`` (:mod:`hinqs.kernel`)."""
    from hinqs.kernel import ProductHamiltonian

    ham = ProductHamiltonian(hcore, eri, nelec, strs[0], strs[1])
    return ham.apply(psi), ham.diagonal()


def _pt2_scores(
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    strs_a: np.ndarray,
    strs_b: np.ndarray,
    amps: np.ndarray,
    candidates: np.ndarray,
    energy: float,
) -> tuple[np.ndarray, np.ndarray]:
    """EN-PT2 score of each candidate alpha string against beta strings ``strs_b``, and its best partner.

    ``amps`` is the normalised Psi restricted to ``strs_a x strs_b`` (both sorted ascending,
    candidates disjoint from strs_a);
    ``energy`` is the teacher's energy over its whole space (the EN denominators' reference).
    """
    hc, hdiag, _, cand_rows = h_on_block(hcore, eri, nelec, strs_a, strs_b, amps, candidates)
    return scores_from(hc, hdiag, cand_rows, strs_b, energy)


def scores_from(
    hc: np.ndarray, hdiag: np.ndarray, cand_rows: np.ndarray, strs_b: np.ndarray, energy: float
) -> tuple[np.ndarray, np.ndarray]:
    """EN-PT2 scores of the candidate rows ``cand_rows`` of ``H|Psi>`` (``hc``, diagonal ``hdiag``,
    columns ``strs_b``) against ``energy``, and each one's best partner column (its largest term)."""
    rows_hc = hc[cand_rows] ** 2
    denom = np.maximum(hdiag[cand_rows] - energy, 1e-3)
    contrib = rows_hc / denom
    return contrib.sum(axis=1), np.asarray(strs_b)[np.argmax(contrib, axis=1)]


def teacher_energy_and_diagonal(
    teacher: GroundState, hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], energy: float | None = None
) -> tuple[float, np.ndarray]:
    """The teacher's exact energy <Psi|H|Psi>/<Psi|Psi> (no core energy) and H's diagonal on its space.

    Both are what a string's eviction cost is measured with (:func:`string_losses`). ``energy``
    is that energy when the solver's is known for these integrals
    (:func:`hinqs.io.hamiltonian.solved_energy`): then only the diagonal is built, not H|Psi>.
    """
    from hinqs.kernel import ProductHamiltonian

    if energy is not None:
        return float(energy), ProductHamiltonian(hcore, eri, nelec, teacher.strs_a, teacher.strs_b).diagonal()
    psi = np.asarray(teacher.amplitudes, dtype=np.float64)
    hc, hdiag = _h_and_diagonal(hcore, eri, nelec, (teacher.strs_a, teacher.strs_b), psi)
    return float(np.vdot(psi, hc) / np.vdot(psi, psi)), hdiag


def string_losses(amplitudes: np.ndarray, hdiag: np.ndarray, energy: float) -> np.ndarray:
    """Energy (Ha) each row string of the teacher would cost if dropped: sum_b |c_xb|^2 (H_xb,xb - E).

    Removing components of total weight w from a normalised eigenvector raises the energy
    of what is left to E + (<Psi_S|H|Psi_S> - E w) / (1 - w); to leading order (diagonal of
    the removed block) that is the sum above. It is in the same unit as a candidate's EN-PT2
    energy, so a string is evicted only for a candidate expected to bring more.
    """
    prob = np.asarray(amplitudes, dtype=np.float64) ** 2
    prob = prob / prob.sum()
    return (prob * np.maximum(hdiag - energy, 0.0)).sum(axis=1)


SINGLES_PARENTS = 4  # heaviest other-spin strings whose single excitations join the PT2 partners


def _partner_columns(
    other: np.ndarray, amps: np.ndarray, norb: int, n_partners: int, singles_parents: int = SINGLES_PARENTS
) -> tuple[np.ndarray, np.ndarray]:
    """Other-spin strings a candidate is scored against, and Psi on ``own x partners`` (sorted).

    The ``n_partners`` heaviest teacher strings, plus the single excitations of the
    ``singles_parents`` heaviest (zero amplitude: not in the teacher). Without the latter an
    alpha single x could only pair with teacher beta strings, and <x b_HF|H|HF> vanishes
    for HF orbitals (Brillouin): the opposite-spin double excitations (x, y), the largest
    class of correlation, would never be found from an HF-like teacher.
    """
    weight = square_sums(amps)[1]
    cols = np.sort(np.argsort(-weight, kind="stable")[:n_partners])
    singles = np.setdiff1d(excitations(_top(other, weight, singles_parents), norb, doubles=False), other)
    partners = np.union1d(other[cols], singles)
    out = np.zeros((amps.shape[0], len(partners)))
    out[:, np.searchsorted(partners, other[cols])] = amps[:, cols]
    return partners, out


def scored_block(
    own: np.ndarray, other: np.ndarray, amps: np.ndarray, norb: int, settings: ExpansionSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the expansion scores for one spin: the new excitations of the ``top_strings``
    heaviest ``own`` strings, and the partner strings with Psi on ``own x partners``."""
    parents = _top(own, (amps**2).sum(axis=1), settings.top_strings)
    excited = np.setdiff1d(excitations(parents, norb), own)
    partners, partner_amps = _partner_columns(other, amps, norb, settings.partner_strings)
    return excited, partners, partner_amps


@dataclass(frozen=True)
class ChannelPlan:
    """What the subspace step does with the strings of one spin (both spins for closed shells).

    ``added``/``added_partner``: new strings and the other-spin string each is paired with;
    ``keep``: the strings allowed to stay (sorted), ``None`` when there is no cap;
    ``carrier``: for every string in ``keep``, the partner to pair it with if no kept
    determinant carries it any more (its heaviest partner, or the PT2 partner of a candidate).
    """

    added: np.ndarray
    added_partner: np.ndarray
    keep: np.ndarray | None
    carrier: dict[int, int]
    n_candidates: int
    pt2_added: float
    excited: np.ndarray  # the excitations of the teacher's heaviest strings (what expansion alone would score)


def _channel_plan(
    own: np.ndarray,
    other: np.ndarray,
    amps: np.ndarray,
    nelec: tuple[int, int],
    hcore: np.ndarray,
    eri: np.ndarray,
    energy: float,
    hdiag: np.ndarray,
    subspace_own: np.ndarray,
    settings: ExpansionSettings,
    max_strings: int,
    protected: int,
) -> ChannelPlan:
    """Rank the strings of one spin: teacher strings by eviction cost, all others by EN-PT2 gain.

    Candidates are the single/double excitations of the teacher's heaviest strings plus every
    string of the subspace the teacher does not hold (e.g. this iteration's NQS samples), all
    scored in one H|Psi> product. The ``settings.strings`` best candidates not yet in the
    subspace are added; with ``max_strings`` the strings of largest importance are kept
    (``protected``, the HF string, always).
    """
    prob = amps**2
    loss = string_losses(amps, hdiag, energy)
    excited, partners, partner_amps = scored_block(own, other, amps, hcore.shape[0], settings)
    candidates = np.union1d(excited, np.setdiff1d(subspace_own, own))
    candidates = np.setdiff1d(candidates, own)
    gain = np.zeros(0)
    partner = np.zeros(0, np.uint64)
    if len(candidates):
        gain, partner = _pt2_scores(hcore, eri, nelec, own, partners, partner_amps, candidates, energy)
    fresh = ~np.isin(candidates, subspace_own)
    order = top_groups(np.where(fresh, gain, 0.0), settings.strings)
    added, added_partner = candidates[order], partner[order]
    heaviest_partner = other[np.argmax(prob, axis=1)]
    carrier = {int(s): int(p) for s, p in zip(own, heaviest_partner, strict=True)}
    carrier.update({int(s): int(p) for s, p in zip(candidates, partner, strict=True)})
    keep = None
    universe = np.union1d(subspace_own, added)
    if max_strings > 0 and len(universe) > max_strings:
        importance = dict(zip(own.tolist(), loss.tolist(), strict=True))
        importance.update(zip(candidates.tolist(), gain.tolist(), strict=True))
        score = np.array([importance.get(int(s), 0.0) for s in universe])
        score[universe == np.uint64(protected)] = np.inf
        keep = universe[top_groups(score, max_strings)]
    return ChannelPlan(added, added_partner, keep, carrier, len(candidates), float(gain[order].sum()), excited)


def plan_strings(
    teacher: GroundState,
    subspace: Determinants,
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    settings: ExpansionSettings,
    max_strings: int = 0,
    energy: float | None = None,
) -> list[ChannelPlan]:
    """One :class:`ChannelPlan` per spin channel (one for closed shells, alpha then beta otherwise).

    ``energy``: the teacher's electronic energy when the solver's is known for these integrals."""
    hcore, eri = np.asarray(hcore, dtype=np.float64), np.asarray(eri, dtype=np.float64)
    norb = hcore.shape[0]
    check_state(teacher, norb, nelec)
    teacher = GroundState(
        teacher.strs_a, teacher.strs_b, teacher.amplitudes / np.sqrt(np.vdot(teacher.amplitudes, teacher.amplitudes))
    )
    energy, hdiag = teacher_energy_and_diagonal(teacher, hcore, eri, nelec, energy)
    hf_a, hf_b = hartree_fock_strings(norb, nelec)
    closed = closed_shell(nelec, teacher.strs_a, teacher.strs_b)
    if closed:
        own_subspace = np.union1d(subspace.alpha, subspace.beta)
        return [
            _channel_plan(
                teacher.strs_a, teacher.strs_b, teacher.amplitudes, nelec, hcore, eri, energy, hdiag, own_subspace,
                settings, max_strings, hf_a,
            )
        ]  # fmt: skip
    alpha = _channel_plan(
        teacher.strs_a, teacher.strs_b, teacher.amplitudes, nelec, hcore, eri, energy, hdiag,
        np.unique(subspace.alpha), settings, max_strings, hf_a,
    )  # fmt: skip
    beta = _channel_plan(
        teacher.strs_b, teacher.strs_a, teacher.amplitudes.T, (nelec[1], nelec[0]), hcore, eri, energy, hdiag.T,
        np.unique(subspace.beta), settings, max_strings, hf_b,
    )  # fmt: skip
    return [alpha, beta]


def apply_plan(subspace: Determinants, plans: list[ChannelPlan], norb: int, nelec: tuple[int, int]) -> Determinants:
    """The subspace with the planned strings added and, under a cap, only kept strings left.

    A determinant stays when both its strings are kept; a kept string that no remaining
    determinant carries is re-attached to its carrier partner (or the HF string of the other
    spin when that partner is gone), so no kept string is lost from the subspace.
    """
    hf_a, hf_b = hartree_fock_strings(norb, nelec)
    closed = len(plans) == 1
    if closed:
        plan = plans[0]
        subspace = expand_subspace(subspace, plan.added, plan.added_partner)
        if plan.keep is None:
            return subspace
        keep_a = keep_b = plan.keep
        carriers_a = carriers_b = plan.carrier
    else:
        pa, pb = plans
        subspace = expand_subspace(subspace, pa.added, pa.added_partner)
        subspace = expand_subspace(subspace, pb.added_partner, pb.added)
        keep_a = pa.keep if pa.keep is not None else np.unique(subspace.alpha)
        keep_b = pb.keep if pb.keep is not None else np.unique(subspace.beta)
        if pa.keep is None and pb.keep is None:
            return subspace
        carriers_a, carriers_b = pa.carrier, pb.carrier
    inside = np.isin(subspace.alpha, keep_a) & np.isin(subspace.beta, keep_b)
    kept = Determinants(subspace.alpha[inside], subspace.beta[inside], subspace.weights()[inside])
    extra_a: list[int] = []
    extra_b: list[int] = []
    if closed:
        covered = np.union1d(kept.alpha, kept.beta)
        for s in np.setdiff1d(keep_a, covered).tolist():
            p = carriers_a.get(int(s), hf_b)
            extra_a.append(int(s))
            extra_b.append(p if np.isin(np.uint64(p), keep_b) else hf_b)
    else:
        for s in np.setdiff1d(keep_a, kept.alpha).tolist():
            p = carriers_a.get(int(s), hf_b)
            extra_a.append(int(s))
            extra_b.append(p if np.isin(np.uint64(p), keep_b) else hf_b)
        for s in np.setdiff1d(keep_b, kept.beta).tolist():
            p = carriers_b.get(int(s), hf_a)
            extra_b.append(int(s))
            extra_a.append(p if np.isin(np.uint64(p), keep_a) else hf_a)
    return expand_subspace(kept, np.array(extra_a, np.uint64), np.array(extra_b, np.uint64))


def select_strings(
    teacher: GroundState,
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    settings: ExpansionSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """New determinants ``(alpha, beta)`` carrying the best PT2-ranked new strings of the teacher."""
    if settings.strings <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    empty = Determinants(teacher.strs_a[:0], teacher.strs_b[:0], np.zeros(0, np.int64))
    plans = plan_strings(teacher, empty, hcore, eri, nelec, settings)
    if len(plans) == 1:
        return plans[0].added.astype(np.uint64), plans[0].added_partner.astype(np.uint64)
    pa, pb = plans
    return (
        np.concatenate([pa.added, pb.added_partner]).astype(np.uint64),
        np.concatenate([pa.added_partner, pb.added]).astype(np.uint64),
    )


def expand_subspace(subspace: Determinants, alpha: np.ndarray, beta: np.ndarray) -> Determinants:
    """The subspace plus the given determinants, each weighted with the subspace's largest count."""
    if len(alpha) == 0:
        return subspace
    weight = int(subspace.weights().max()) if len(subspace) else 1
    a, b, c = unique_determinants(
        np.concatenate([subspace.alpha, alpha.astype(np.uint64)]),
        np.concatenate([subspace.beta, beta.astype(np.uint64)]),
        np.concatenate([subspace.weights(), np.full(len(alpha), weight, np.int64)]),
    )
    return Determinants(a, b, c)
