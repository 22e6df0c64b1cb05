"""Exact (FCI) ground states of active-space Hamiltonians: the one place PySCF's FCI is called.

Used for the FCI reference of ``hinqs prepare``, the accuracy floor and the tests. The
settings are tight (1e-12) because the loop's energies are compared with these to
micro-Hartree precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FciState:
    """The exact ground state as PySCF's (alpha strings x beta strings) coefficient matrix."""

    energy: float
    civec: np.ndarray
    strings_a: np.ndarray
    strings_b: np.ndarray


def exact_ground_state(hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], ecore: float = 0.0) -> FciState:
    """FCI ground state; the energy is total (``ecore`` added)."""
    from pyscf import fci
    from pyscf.fci import cistring

    norb = int(np.asarray(hcore).shape[0])
    solver = fci.direct_spin1.FCI()
    solver.conv_tol = 1e-12
    solver.max_cycle = 300
    solver.verbose = 0
    energy, civec = solver.kernel(np.asarray(hcore), np.asarray(eri), norb, tuple(nelec), ecore=ecore)
    strings_a = np.asarray(cistring.make_strings(range(norb), nelec[0]), dtype=np.uint64)
    strings_b = np.asarray(cistring.make_strings(range(norb), nelec[1]), dtype=np.uint64)
    return FciState(float(energy), np.asarray(civec), strings_a, strings_b)


def fci_energy(hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], ecore: float = 0.0) -> float:
    """Lowest eigenvalue in the full CI space of the given N_alpha, N_beta (total energy)."""
    return exact_ground_state(hcore, eri, nelec, ecore).energy
