"""Step: batches of the subspace diagonalised in parallel and merged -> sqd/{result.json, state.npz}."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from hinqs.io.files import StepResult, read_determinants
from hinqs.sqd.settings import SQDSettings

if TYPE_CHECKING:
    from hinqs.sqd.executors import BatchExecutor


def diagonalize(
    hamiltonian: str | os.PathLike[str],
    subspace: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: SQDSettings,
    *,
    executor: BatchExecutor | None = None,
    teacher: str | os.PathLike[str] | None = None,
) -> StepResult:
    """Draw ``settings.n_batches`` batches from the subspace file ``subspace`` and solve them.

    ``executor`` (e.g. a process pool kept open across iterations by the driver) replaces
    the one ``settings.parallel`` names; results do not depend on which one runs them.
    ``teacher`` (the previous ground state) ranks strings when a batch must be capped.
    """
    from hinqs.sqd.step import run_diagonalization

    settings = spin_held_for_broken_symmetry(hamiltonian, settings)
    dets = read_determinants(subspace, "subspace")
    return run_diagonalization(hamiltonian, dets.alpha, dets.beta, dets.counts, out, settings, executor=executor,
                               teacher=teacher)  # fmt: skip


def spin_held_for_broken_symmetry(hamiltonian: str | os.PathLike[str], settings: SQDSettings) -> SQDSettings:
    """The settings with the system's spin held from the first Davidson cycle (the ``fix_spin_``
    penalty towards S(S+1)) when prepare's lowest reference determinant is broken-symmetry
    (open shells of both spins: antiferromagnetic couplings, hinqs.chem.mean_field), unless
    the config sets ``sqd.spin_sq`` itself.

    Where spin states lie within mHa of each other, an unpenalised Davidson in a product space
    that is not spin-complete converges onto a mixed-spin root, and a re-solve from it
    stagnates (measured on [2Fe-2S]: converged at <S^2> far from 0, then the singlet re-solve
    from the projected vector stayed at a residual of 0.40 for 140 cycles).
    """
    from dataclasses import replace

    from hinqs.io.hamiltonian import active_shape, read_meta, reference_strings
    from hinqs.sqd.solvers import target_spin_square

    if settings.solver.spin_sq is not None:
        return settings
    meta = read_meta(hamiltonian)
    alpha, beta = reference_strings(meta, hamiltonian)[0]
    if not (alpha & ~beta and beta & ~alpha):
        return settings
    _, nelec = active_shape(meta, hamiltonian)
    return replace(settings, solver=replace(settings.solver, spin_sq=target_spin_square(nelec)))
