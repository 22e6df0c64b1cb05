"""Step: grow the cumulative determinant subspace -> subspace.npz.

previous subspace + this iteration's samples + HF; then, as ``subspace`` in the config
asks, PT2-ranked expansion determinants from the previous ground state (the teacher) and
the size cap (see :mod:`hinqs.expansion`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hinqs.determinants import Determinants
from hinqs.files import read_determinants, write_determinants
from hinqs.hamiltonian import active_shape, read_meta
from hinqs.settings import SubspaceSettings
from hinqs.subspace import grow_subspace


@dataclass(frozen=True)
class SubspaceReport:
    """What the step did to the subspace."""

    size: int
    new: int
    expansion: int | None
    evicted: int | None

    def line(self) -> str:
        extra = "" if self.expansion is None else f", {self.expansion} expansion determinants"
        extra += "" if self.evicted is None else f", {self.evicted} evicted"
        return f"{self.size} determinants ({self.new} new{extra})"


def _apply_options(
    subspace: Determinants,
    settings: SubspaceSettings,
    hamiltonian: str | os.PathLike[str],
    shape: tuple[int, tuple[int, int]],
    teacher_path: str | os.PathLike[str] | None,
) -> tuple[Determinants, int | None, int | None]:
    """Expansion and cap; returns the subspace, expansion count and evicted count (None when off)."""
    from hinqs.expansion import cap_basis, expand_basis, hartree_fock_teacher, read_teacher_state, select_strings

    norb, nelec = shape
    expand, cap = settings.expansion.strings > 0, settings.max_size > 0
    teacher = read_teacher_state(teacher_path, norb=norb, nelec=nelec) if teacher_path and (expand or cap) else None
    new_a = new_b = None
    n_expansion = n_evicted = None
    if expand:
        from hinqs.hamiltonian import load_hamiltonian

        ham = load_hamiltonian(hamiltonian)
        source = teacher if teacher is not None else hartree_fock_teacher(norb, nelec)
        new_a, new_b = select_strings(source, ham.hcore, ham.eri, nelec, settings.expansion)
        subspace = expand_basis(subspace, new_a, new_b)
        n_expansion = len(new_a)
    if cap:
        before = len(subspace)
        subspace = cap_basis(subspace, settings.max_size, norb, nelec, teacher, new_a, new_b)
        n_evicted = before - len(subspace)
    return subspace, n_expansion, n_evicted


def build_subspace(
    settings: SubspaceSettings,
    hamiltonian: str | os.PathLike[str],
    samples: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    previous: str | os.PathLike[str] | None = None,
    teacher: str | os.PathLike[str] | None = None,
) -> SubspaceReport:
    """Write iteration k's subspace from k-1's (``previous``), k's samples and k-1's ground state."""
    shape = active_shape(read_meta(hamiltonian), hamiltonian)
    before = read_determinants(previous, "previous subspace") if previous else None
    subspace = grow_subspace(before, read_determinants(samples, "samples file"), *shape)
    subspace, n_expansion, n_evicted = _apply_options(subspace, settings, hamiltonian, shape, teacher)
    write_determinants(out, subspace)
    return SubspaceReport(len(subspace), len(subspace) - (len(before) if before else 0), n_expansion, n_evicted)
