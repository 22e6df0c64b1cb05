"""The two batch solvers on real systems: agreement, FCI limit, convergence detection."""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from sqd_helpers import build_hamiltonian, random_strings, solver_settings

from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.sqd.solvers import solve_lean, solve_with_solve_fermion
from hinqs.sqd.task import BatchTask, run_task


def all_strings(norb: int, nocc: int) -> np.ndarray:
    return np.array(sorted(sum(1 << i for i in occ) for occ in combinations(range(norb), nocc)), dtype=np.uint64)


pytestmark = pytest.mark.usefixtures("one_solver_thread")


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


@pytest.mark.parametrize("solver", ["solve_fermion", "lean"])
def test_warm_start_gives_the_same_energy_with_fewer_matvecs(hamiltonians, tmp_path, solver):
    """N2 batch: a cold solve, then a warm start from the cold state restricted to a smaller
    space's neighbour: energies equal to 1e-10 Ha where the space is the same, fewer H|c>."""
    from pyscf.fci import selected_ci

    from hinqs.io.files import write_state
    from hinqs.sqd.task import embedded_state

    ham = load_hamiltonian(hamiltonians["n2"])
    a, b = subspace("n2", ham)
    settings = solver_settings(solver=solver)
    calls = {"n": 0}
    original = selected_ci.SelectedCI.contract_2e

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    selected_ci.SelectedCI.contract_2e = counting
    try:
        cold = solve_with_solve_fermion(a, b, ham.hcore, ham.eri, ham.nelec, settings)
        cold_calls, calls["n"] = calls["n"], 0
        path = tmp_path / "state.npz"
        write_state(path, cold.state, cold.energy, 0)
        guess = embedded_state(str(path), a, b)
        warm = (solve_lean if solver == "lean" else solve_with_solve_fermion)(
            a, b, ham.hcore, ham.eri, ham.nelec, settings, guess
        )
        warm_calls = calls["n"]
    finally:
        selected_ci.SelectedCI.contract_2e = original
    assert abs(warm.energy - cold.energy) < 1e-10
    assert warm.converged
    assert warm_calls < cold_calls
    # A state on other strings embeds on the shared ones only, normalised; none shared: no guess.
    part = embedded_state(str(path), a[:20], b[:20])
    assert part.shape == (20, 20) and abs(np.linalg.norm(part) - 1) < 1e-12
    assert embedded_state(str(path), np.array([2**40], np.uint64), b) is None


def test_a_long_solve_prints_a_line_per_davidson_cycle(hamiltonians, tmp_path):
    """From PROGRESS_DIMENSION determinants on, each Davidson cycle prints its residual and
    energy to the process's stdout (a worker's: the step's log); small solves stay quiet."""
    import subprocess
    import sys

    from hinqs.sqd.solvers import PROGRESS_DIMENSION

    ham = load_hamiltonian(hamiltonians["n2"])
    strings = random_strings(ham.norb, ham.nelec[0], 330, np.random.default_rng(5))
    assert len(strings) ** 2 >= PROGRESS_DIMENSION
    np.save(tmp_path / "strings.npy", strings)
    script = f"""
import numpy as np
from sqd_helpers import solver_settings
from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.sqd.solvers import solve_lean
from hinqs.threads import thread_limit
ham = load_hamiltonian({str(hamiltonians["n2"])!r})
s = np.load({str(tmp_path / "strings.npy")!r})
with thread_limit(1):
    for n in (len(s), 40):
        out = solve_lean(s[:n], s[:n], ham.hcore, ham.eri, ham.nelec, solver_settings(solver="lean", conv_tol=1e-6))
        print("solved", n, out.converged, flush=True)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path(__file__).parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    big_end = lines.index(f"solved {len(strings)} True")
    cycles = [line for line in lines[:big_end] if line.startswith("davidson ")]
    assert len(cycles) >= 3 and all("|r|=" in line and "e= " in line for line in cycles)
    assert lines[big_end + 1 :] == ["solved 40 True"]


def test_a_direct_solve_at_max_cycle_is_continued_to_convergence(hamiltonians, capfd):
    """hinqs' Davidson restarts from its current vector at max_cycle and goes on (up to 4 x
    max_cycle cycles in all): the same energy as an unbounded solve; past the bound it says on
    the screen that it takes the energy unconverged."""
    from hinqs.sqd.solvers import solve_direct

    ham = load_hamiltonian(hamiltonians["n2"])
    a, b = subspace("n2", ham)
    free = solve_direct(a, b, ham.hcore, ham.eri, ham.nelec, solver_settings(solver="direct"))
    bounded = solve_direct(a, b, ham.hcore, ham.eri, ham.nelec, solver_settings(solver="direct", max_cycle=4))
    assert free.converged and bounded.converged and not bounded.warnings
    assert abs(bounded.energy - free.energy) < 1e-9
    assert "continued from its current vector" in capfd.readouterr().err
    short = solve_direct(a, b, ham.hcore, ham.eri, ham.nelec, solver_settings(solver="direct", max_cycle=1))
    assert not short.converged and short.residual_norm > math.sqrt(1e-10)
    assert any("4 x max_cycle = 4 cycles" in w and "unconverged" in w for w in short.warnings)
    assert "the energy is taken unconverged" in capfd.readouterr().err


def test_a_guess_is_spin_projected_when_a_target_spin_is_set(tmp_path):
    """N2/STO-3G's whole space: the FCI singlet mixed with a triplet (an antisymmetric C) twice
    its size. Lowdin's projector leaves the singlet; the penalised solve from the mixture
    reaches FCI; a pure triplet leaves nothing (the solve then starts from the lowest diagonal)."""
    from sqd_helpers import n2_sto3g

    from hinqs.chem.fci import fci_energy
    from hinqs.kernel import ProductHamiltonian
    from hinqs.sqd.davidson import spin_projected
    from hinqs.sqd.solvers import WholeOperator, solve_direct

    ham = n2_sto3g(tmp_path, 1.0977)
    strings = all_strings(ham.norb, 5)
    exact = solve_direct(strings, strings, ham.hcore, ham.eri, ham.nelec, solver_settings(solver="direct"))
    singlet = exact.state.amplitudes
    noise = np.random.default_rng(0).standard_normal(singlet.shape)
    triplet = noise - noise.T
    triplet *= 2.0 / np.linalg.norm(triplet)
    op = WholeOperator(ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, strings, strings))

    def project(x: np.ndarray) -> np.ndarray | None:
        s2 = lambda v: op.apply_spin_square(v.reshape(singlet.shape)).ravel()  # noqa: E731
        return spin_projected(s2, x.ravel(), op.space, 0.0, ham.nelec, ham.norb)

    projected = project(singlet + triplet)
    assert abs(abs(np.vdot(projected, singlet.ravel())) - 1.0) < 1e-10
    assert project(triplet) is None
    out = solve_direct(strings, strings, ham.hcore, ham.eri, ham.nelec, solver_settings(solver="direct", spin_sq=0.0),
                       singlet + triplet)  # fmt: skip
    assert out.converged and abs(out.energy - fci_energy(ham.hcore, ham.eri, ham.nelec)) < 1e-9
    assert out.spin_sq < 1e-8


def test_the_spin_square_diagonal_is_the_kernels():
    """<D|S^2|D> of every determinant, as the kernel's S^2 gives it: the penalised Davidson's
    preconditioner adds it (times the shift) to H's diagonal."""
    import numpy as np
    from pyscf.fci import cistring

    from hinqs.kernel import ProductHamiltonian
    from hinqs.sqd.solvers import spin_square_diagonal

    norb, nelec = 6, (3, 2)
    hcore = np.diag(np.arange(norb, dtype=float))
    strs_a = np.array(cistring.make_strings(range(norb), nelec[0]), np.int64)[::2]
    strs_b = np.array(cistring.make_strings(range(norb), nelec[1]), np.int64)[::3]
    ham = ProductHamiltonian(hcore, np.zeros((norb,) * 4), nelec, strs_a, strs_b)
    n = len(strs_a) * len(strs_b)
    unit = np.eye(n).reshape(n, len(strs_a), len(strs_b))
    exact = [ham.apply_spin_square(unit[i]).ravel()[i] for i in range(n)]
    np.testing.assert_array_equal(spin_square_diagonal(strs_a, strs_b, nelec), exact)


def test_a_one_determinant_space_is_solved_exactly(hamiltonians):
    """The start vector is already the eigenvector (a zero residual): the Davidson stops there
    instead of normalising a zero correction (which gave NaN and a failed batch)."""
    from hinqs.io.determinants import hartree_fock_strings
    from hinqs.kernel import ProductHamiltonian
    from hinqs.sqd.solvers import solve_direct

    ham = load_hamiltonian(hamiltonians["h2"])
    hf_a, hf_b = hartree_fock_strings(ham.norb, tuple(ham.nelec))
    strs_a, strs_b = np.array([hf_a], np.int64), np.array([hf_b], np.int64)
    out = solve_direct(strs_a, strs_b, ham.hcore, ham.eri, tuple(ham.nelec), solver_settings(solver="direct"))
    diagonal = ProductHamiltonian(ham.hcore, ham.eri, tuple(ham.nelec), strs_a, strs_b).diagonal().ravel()[0]
    assert out.converged and abs(out.energy - diagonal) < 1e-12
