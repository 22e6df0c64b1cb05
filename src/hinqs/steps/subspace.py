"""Step: grow the cumulative determinant subspace -> subspace.npz (+ what changed, as JSON).

previous subspace + this iteration's samples + HF; then, as ``subspace`` in the settings
asks (resolved for the system, see :meth:`hinqs.settings.RunSettings.for_system`),
PT2-ranked expansion strings from the previous ground state (the teacher; the HF
determinant at the first iteration) and the string cap that keeps the strings of largest
importance (see :mod:`hinqs.subspace.expansion`); ``max_size`` is the older determinant cap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hinqs.io.atomic import write_json
from hinqs.io.determinants import Determinants
from hinqs.io.files import read_determinants, write_determinants
from hinqs.io.hamiltonian import active_shape, read_meta
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
    hamiltonian: str | os.PathLike[str],
    shape: tuple[int, tuple[int, int]],
    teacher: Any,
    sampled: tuple[Determinants, Determinants | None],
    stats: dict[str, Any],
) -> tuple[Determinants, np.ndarray, np.ndarray]:
    """Expansion strings and the string cap; returns the subspace and the added (alpha, beta) pairs."""
    from hinqs.io.hamiltonian import load_hamiltonian
    from hinqs.subspace.expansion import apply_plan, hartree_fock_teacher, plan_strings

    norb, nelec = shape
    ham = load_hamiltonian(hamiltonian)
    source = teacher if teacher is not None else hartree_fock_teacher(norb, nelec)
    before = _strings(subspace)
    plans = plan_strings(source, subspace, ham.hcore, ham.eri, nelec, settings.expansion, settings.max_strings or 0)
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
    )
    if len(plans) == 1:
        return subspace, plans[0].added, plans[0].added_partner
    return (
        subspace,
        np.concatenate([plans[0].added, plans[1].added_partner]),
        np.concatenate([plans[0].added_partner, plans[1].added]),
    )


def build_subspace(
    settings: SubspaceSettings,
    hamiltonian: str | os.PathLike[str],
    samples: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    previous: str | os.PathLike[str] | None = None,
    teacher: str | os.PathLike[str] | None = None,
    stats: str | os.PathLike[str] | None = None,
) -> SubspaceReport:
    """Write iteration k's subspace from k-1's (``previous``), k's samples and k-1's ground state."""
    from hinqs.subspace.expansion import cap_basis, read_teacher_state

    norb, nelec = shape = active_shape(read_meta(hamiltonian), hamiltonian)
    before = read_determinants(previous, "previous subspace") if previous else None
    drawn = read_determinants(samples, "samples file")
    subspace = grow_subspace(before, drawn, norb, nelec)
    report = SubspaceReport(0, 0, {"n_grown": len(subspace)})
    state = read_teacher_state(teacher, norb=norb, nelec=nelec) if teacher else None
    added_a = added_b = None
    if (settings.expansion.strings or 0) > 0 or (settings.max_strings or 0) > 0:
        subspace, added_a, added_b = _expand_and_cap_strings(
            subspace, settings, hamiltonian, shape, state, (drawn, before), report.stats
        )
    if settings.max_size > 0:
        size = len(subspace)
        subspace = cap_basis(subspace, settings.max_size, norb, nelec, state, added_a, added_b)
        report.stats["evicted_determinants"] = size - len(subspace)
    write_determinants(out, subspace)
    report.size, report.new = len(subspace), len(subspace) - (len(before) if before else 0)
    report.stats["n_determinants"] = len(subspace)
    if stats:
        write_json(stats, report.stats)
    return report
