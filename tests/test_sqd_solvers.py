"""The two batch solvers on real systems: agreement, FCI limit, convergence detection."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from sqd_helpers import build_hamiltonian, random_strings, solver_settings

from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.sqd.solvers import solve_lean, solve_with_solve_fermion
from hinqs.sqd.task import BatchTask, run_task, thread_limit


def all_strings(norb: int, nocc: int) -> np.ndarray:
    return np.array(sorted(sum(1 << i for i in occ) for occ in combinations(range(norb), nocc)), dtype=np.uint64)


@pytest.fixture(autouse=True)
def one_thread():
    """One OpenMP thread: deterministic bits, and no spinning threads on a busy 2-core machine."""
    with thread_limit(1):
        yield


@pytest.fixture(scope="module")
def hamiltonians(tmp_path_factory):
    root = tmp_path_factory.mktemp("ham")
    return {name: build_hamiltonian(name, root / name) for name in ("h2", "lih", "nh", "n2")}


def subspace(name: str, ham) -> tuple[np.ndarray, np.ndarray]:
    """Full space for the small systems, a 40 x 40 batch-like subspace for N2."""
    if name == "n2":
        strings = random_strings(ham.norb, ham.nelec[0], 40, np.random.default_rng(3))
        return strings, strings
    return all_strings(ham.norb, ham.nelec[0]), all_strings(ham.norb, ham.nelec[1])


@pytest.mark.parametrize("name", ["h2", "lih", "nh", "n2"])
def test_lean_agrees_with_solve_fermion(hamiltonians, name):
    from qiskit_addon_sqd.fermion import solve_fermion

    ham = load_hamiltonian(hamiltonians[name])
    a, b = subspace(name, ham)
    target = 0.0 if ham.nelec[0] == ham.nelec[1] else 2.0  # singlet; NH is a triplet
    for spin_sq in (None, target):
        settings = solver_settings(spin_sq=spin_sq)
        ref = solve_with_solve_fermion(a, b, ham.hcore, ham.eri, ham.nelec, settings)
        lean = solve_lean(a, b, ham.hcore, ham.eri, ham.nelec, settings)
        assert abs(lean.energy - ref.energy) < 1e-9
        assert abs(lean.spin_sq - ref.spin_sq) < 1e-8
        assert ref.converged and lean.converged
        assert np.array_equal(lean.state.amplitudes, ref.state.amplitudes)  # the same Davidson run
        assert np.allclose(lean.state.occ_a, ref.state.occ_a, atol=1e-10)
        assert np.allclose(lean.state.occ_b, ref.state.occ_b, atol=1e-10)
        assert lean.state.amplitudes.shape == (len(a), len(b))
        assert np.array_equal(lean.state.strs_a, a) and lean.state.strs_a.dtype == np.uint64
        # Our wrapper returns exactly what qiskit-addon-sqd's solve_fermion does.
        direct = solve_fermion(
            (a.view(np.int64), b.view(np.int64)), ham.hcore, ham.eri, spin_sq=spin_sq, max_cycle=200, tol=1e-10
        )
        assert direct[0] == ref.energy


def test_full_space_reaches_fci(hamiltonians):
    from hinqs.chem.fci import fci_energy

    ham = load_hamiltonian(hamiltonians["lih"])
    e_fci = fci_energy(ham.hcore, ham.eri, ham.nelec)
    a, b = subspace("lih", ham)
    for solver in ("solve_fermion", "lean"):
        out = run_task(BatchTask(str(hamiltonians["lih"]), 0, a, b, ham.nelec, solver_settings(solver=solver)))
        assert out.ok and abs(out.energy - (e_fci + ham.ecore)) < 1e-8
        assert abs(out.energy - -7.88240341) < 1e-6  # design notes' reference
        assert out.product_shape == (15, 15) and out.threads == 1


@pytest.mark.parametrize("solver", ["solve_fermion", "lean"])
def test_unconverged_davidson_is_detected(hamiltonians, solver):
    ham = load_hamiltonian(hamiltonians["n2"])
    a, b = subspace("n2", ham)
    out = run_task(BatchTask(str(hamiltonians["n2"]), 0, a, b, ham.nelec, solver_settings(solver=solver, max_cycle=2)))
    assert out.ok and out.converged is False
    assert any("did not converge" in w for w in out.warnings)
    assert out.residual_norm is None or out.residual_norm > math.sqrt(1e-10)
