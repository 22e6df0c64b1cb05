"""Reference energies for a prepared Hamiltonian: HF, CCSD, CCSD(T) and FCI (CASCI).

All are computed from the active-space integrals themselves, through a mean-field object
built on them. That keeps one code path for geometry and FCIDUMP input, and makes every
reference an energy of exactly the Hamiltonian the run diagonalises (for a frozen core or
a CAS, CCSD here equals PySCF's CCSD with the same orbitals frozen).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from hinqs.fci import fci_energy


def n_determinants(norb: int, nelec: tuple[int, int]) -> int:
    """Size of the full CI space of the active space."""
    return math.comb(norb, nelec[0]) * math.comb(norb, nelec[1])


def mean_field_on_integrals(hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], ecore: float) -> Any:
    """An RHF/ROHF object over the given orbital basis, converged from the aufbau occupation.

    The active orbitals are canonical SCF orbitals, so the aufbau density in this basis is
    already the self-consistent one; the SCF only confirms it.
    """
    from pyscf import gto, scf

    norb = hcore.shape[0]
    mol = gto.M(verbose=0)
    mol.nelectron = int(sum(nelec))
    mol.spin = int(nelec[0] - nelec[1])
    mol.incore_anyway = True
    mf = scf.RHF(mol) if mol.spin == 0 else scf.ROHF(mol)
    mf.get_hcore = lambda *_args: np.asarray(hcore)
    mf.get_ovlp = lambda *_args: np.eye(norb)
    mf.energy_nuc = lambda *_args: ecore
    mf._eri = np.asarray(eri).reshape(norb * norb, norb * norb)
    mf.conv_tol = 1e-12
    mf.max_cycle = 200
    occ_a = np.zeros(norb)
    occ_a[: nelec[0]] = 1
    occ_b = np.zeros(norb)
    occ_b[: nelec[1]] = 1
    dm0 = np.diag(occ_a + occ_b) if mol.spin == 0 else np.array([np.diag(occ_a), np.diag(occ_b)])
    mf.kernel(dm0)
    return mf


def compute_references(
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    ecore: float,
    *,
    fci_max_determinants: int,
    ccsd: bool,
) -> dict[str, Any]:
    """Reference energies (Ha) and the seconds each took; a method that fails is recorded as null."""
    from pyscf import cc

    norb = hcore.shape[0]
    refs: dict[str, Any] = {"n_determinants": n_determinants(norb, nelec), "seconds": {}}
    start = time.perf_counter()
    mf = mean_field_on_integrals(hcore, eri, nelec, ecore)
    refs["hf_active"] = float(mf.e_tot) if mf.converged else None
    refs["seconds"]["hf"] = time.perf_counter() - start

    refs["ccsd"] = refs["ccsd_t"] = None
    if ccsd and mf.converged and sum(nelec) >= 2:
        start = time.perf_counter()
        mycc = cc.CCSD(mf)
        mycc.verbose = 0
        mycc.conv_tol = 1e-10
        try:
            mycc.kernel()
            if mycc.converged:
                refs["ccsd"] = float(mycc.e_tot)
                refs["ccsd_t"] = float(mycc.e_tot + mycc.ccsd_t())
        except (ValueError, np.linalg.LinAlgError, RuntimeError):
            pass
        refs["seconds"]["ccsd"] = time.perf_counter() - start

    refs["fci"] = None
    if refs["n_determinants"] <= fci_max_determinants:
        start = time.perf_counter()
        refs["fci"] = fci_energy(hcore, eri, nelec, ecore)
        refs["seconds"]["fci"] = time.perf_counter() - start
    return refs
