"""Grow, expand and cap the cumulative subspace of one iteration: the subspace step's one call.

previous subspace + this iteration's samples + HF (:mod:`hinqs.subspace.grow`); then, as the
settings ask (resolved for the system, :meth:`hinqs.loop.settings.RunSettings.for_system`),
PT2-ranked expansion strings from the previous ground state (the teacher; the HF
determinant at the first iteration) and the string cap (:mod:`hinqs.subspace.expansion`);
``max_size`` is the older determinant cap (:mod:`hinqs.subspace.cap`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import comb
from typing import Any

import numpy as np

from hinqs.io.determinants import Determinants, hartree_fock_strings
from hinqs.io.files import GroundState
from hinqs.io.hamiltonian import Hamiltonian, solved_energy
from hinqs.subspace.cap import cap_subspace
from hinqs.subspace.expansion import apply_plan, hartree_fock_teacher, plan_strings
from hinqs.subspace.grow import grow_subspace
from hinqs.subspace.settings import SubspaceSettings


@dataclass
class SubspaceReport:
    """What the step did to the subspace (``stats`` is what ``--stats`` writes)."""

    size: int
    new: int
    stats: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        extra = ""
        if "expansion_strings" in self.stats:
            extra += f", {self.stats['expansion_strings']} expansion strings"
            extra += f", {self.stats['evicted_strings']} strings evicted"
        if "evicted_determinants" in self.stats:
            extra += f", {self.stats['evicted_determinants']} evicted"
        return f"{self.size} determinants ({self.new} new{extra})"


def _strings(dets: Determinants | None) -> np.ndarray:
    """Distinct strings of a determinant set (both spins pooled: what a closed-shell subspace spans)."""
    return np.zeros(0, np.uint64) if dets is None else np.union1d(dets.alpha, dets.beta)


def _expand_and_cap_strings(
    subspace: Determinants,
    settings: SubspaceSettings,
    ham: Hamiltonian,
    shape: tuple[int, tuple[int, int]],
    teacher: GroundState | None,
    sampled: tuple[Determinants, Determinants | None],
    stats: dict[str, Any],
    references: list[tuple[int, int]] | None = None,
) -> tuple[Determinants, np.ndarray, np.ndarray]:
    """Expansion strings and the string cap; returns the subspace and the added (alpha, beta) pairs."""
    norb, nelec = shape
    source = teacher if teacher is not None else hartree_fock_teacher(norb, nelec, references)
    before = _strings(subspace)
    energy = None if teacher is None else solved_energy(teacher, ham)
    plans = plan_strings(
        source, subspace, ham.hcore, ham.eri, nelec, settings.expansion, settings.max_strings or 0, energy
    )
    subspace = apply_plan(subspace, plans, norb, nelec)
    after, added = _strings(subspace), np.concatenate([p.added for p in plans])
    samples, previous = sampled
    kept_sampled = np.intersect1d(np.setdiff1d(_strings(samples), _strings(previous)), after)
    stats.update(
        expansion_strings=int(sum(len(p.added) for p in plans)),
        expansion_pt2=float(sum(p.pt2_added for p in plans)),
        candidates=int(sum(p.n_candidates for p in plans)),
        strings_before_cap=len(np.union1d(before, added)),
        strings=len(after),
        evicted_strings=len(np.setdiff1d(np.union1d(before, added), after)),
        new_sampled_strings_kept=len(np.setdiff1d(kept_sampled, added)),
        # The network's credit: kept sampled strings that expansion did not even propose.
        network_strings_kept=len(np.setdiff1d(kept_sampled, np.concatenate([p.excited for p in plans]))),
    )
    if len(plans) == 1:
        return subspace, plans[0].added, plans[0].added_partner
    return (
        subspace,
        np.concatenate([plans[0].added, plans[1].added_partner]),
        np.concatenate([plans[0].added_partner, plans[1].added]),
    )


def whole_space(norb: int, nelec: tuple[int, int]) -> Determinants:
    """Every alpha string beside the HF beta string and every beta string beside the HF alpha
    string: a subspace whose product space is the whole FCI space."""
    from pyscf.fci import cistring

    hf_a, hf_b = hartree_fock_strings(norb, nelec)
    alpha = np.asarray(cistring.make_strings(range(norb), nelec[0]), np.uint64)
    beta = np.asarray(cistring.make_strings(range(norb), nelec[1]), np.uint64)
    pairs_a = np.concatenate([alpha, np.full(len(beta), hf_a, np.uint64)])
    pairs_b = np.concatenate([np.full(len(alpha), hf_b, np.uint64), beta])
    return Determinants(pairs_a, pairs_b, np.ones(len(pairs_a), np.int64))


def _fill_to_cap(settings: SubspaceSettings, previous: Determinants | None) -> SubspaceSettings:
    """Expansion strings enough to fill the cap in one iteration (after the cap grew), at least
    the configured number: the grown room is filled by the best-ranked strings at once."""
    cap, wanted = settings.max_strings or 0, settings.expansion.strings or 0
    gap = cap - len(_strings(previous))
    if cap > 0 and previous is not None and gap > wanted:
        return replace(settings, expansion=replace(settings.expansion, strings=gap))
    return settings


def build_subspace(
    settings: SubspaceSettings,
    shape: tuple[int, tuple[int, int]],
    drawn: Determinants,
    previous: Determinants | None,
    teacher: GroundState | None,
    hamiltonian: Any,
    references: list[tuple[int, int]] | None = None,
    fill: bool = False,
) -> tuple[Determinants, SubspaceReport]:
    """Iteration k's subspace from k-1's (``previous``), k's samples and k-1's ground state.

    ``hamiltonian`` is called (no arguments) for the :class:`~hinqs.io.hamiltonian.Hamiltonian`
    only when expansion or the string cap needs the integrals. ``references``: the reference
    determinants prepare recorded (:func:`hinqs.io.hamiltonian.reference_strings`), always in
    the subspace, the first one the teacher when there is no ground state yet; None: aufbau HF.
    A cap that holds every string of both spins takes the whole string space (FCI). ``fill``:
    the cap grew since the last iteration, and expansion adds enough strings to fill it.
    """
    norb, nelec = shape
    subspace = grow_subspace(previous, drawn, norb, nelec, references)
    report = SubspaceReport(0, 0, {"n_grown": len(subspace)})
    cap = settings.max_strings or 0
    if cap and cap >= max(comb(norb, n) for n in nelec):
        subspace = grow_subspace(subspace, whole_space(norb, nelec), norb, nelec, references)
        report.stats["whole_space"] = True
    if fill:  # the cap just grew: its new room is filled at once, not over several iterations
        settings = _fill_to_cap(settings, previous)
    added_a = added_b = None
    if (settings.expansion.strings or 0) > 0 or cap > 0:
        subspace, added_a, added_b = _expand_and_cap_strings(
            subspace, settings, hamiltonian(), shape, teacher, (drawn, previous), report.stats, references
        )
    if settings.max_size > 0:
        size = len(subspace)
        subspace = cap_subspace(subspace, settings.max_size, norb, nelec, teacher, added_a, added_b)
        report.stats["evicted_determinants"] = size - len(subspace)
    report.size, report.new = len(subspace), len(subspace) - (len(previous) if previous else 0)
    report.stats["n_determinants"] = len(subspace)
    report.stats["max_strings"] = cap
    return subspace, report
