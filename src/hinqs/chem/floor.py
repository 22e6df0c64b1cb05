"""The best a subspace of a given size can do: the accuracy floor of SQD.

Given the exact FCI ground state, take the ``k_alpha`` alpha strings and ``k_beta`` beta
strings of largest weight (marginal |c|^2 summed over the other spin) and diagonalise in
their product space. A sampler that finds the same number of strings cannot be expected to
beat this, so the accuracy table reports how close a run gets to it.
"""

from __future__ import annotations

import numpy as np

from hinqs.chem.fci import FciState
from hinqs.chem.fci import exact_ground_state as fci_ground_state
from hinqs.io.hamiltonian import Hamiltonian


def exact_ground_state(ham: Hamiltonian) -> FciState:
    """FCI ground state of a loaded Hamiltonian (total energy, core energy included)."""
    return fci_ground_state(ham.hcore, ham.eri, ham.nelec, ham.ecore)


def top_strings(state: FciState, k_alpha: int, k_beta: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k_alpha``/``k_beta`` strings of largest marginal weight, sorted ascending."""
    weight = np.abs(state.civec) ** 2
    order_a = np.argsort(-weight.sum(axis=1), kind="stable")[:k_alpha]
    order_b = np.argsort(-weight.sum(axis=0), kind="stable")[:k_beta]
    return np.sort(state.strings_a[order_a]), np.sort(state.strings_b[order_b])


def floor_energy(ham: Hamiltonian, state: FciState, k_alpha: int, k_beta: int) -> float:
    """Lowest energy in the product space of the top-weighted strings (total energy)."""
    from qiskit_addon_sqd.fermion import solve_fermion

    strs_a, strs_b = top_strings(state, k_alpha, k_beta)
    energy, *_ = solve_fermion(
        (strs_a.astype(np.int64), strs_b.astype(np.int64)),
        np.asarray(ham.hcore),
        np.asarray(ham.eri),
        max_cycle=300,
        tol=1e-12,
    )
    return float(energy) + ham.ecore
