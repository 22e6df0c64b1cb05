"""The solver's energy travels with its state: state.npz names the integrals it was solved in,
and the expansion and the first-order target reuse it instead of one more H|Psi> over the
whole state (tens of seconds at 16 million determinants), only when the integrals match."""

from __future__ import annotations

import numpy as np
import pytest
from sqd_helpers import build_hamiltonian, random_strings, solver_settings

from hinqs.chem.rotation import natural_rotation, rotate_integrals
from hinqs.io.determinants import Determinants
from hinqs.io.files import GroundState, read_state, write_state
from hinqs.io.hamiltonian import hamiltonian_id, load_hamiltonian, solved_energy, write_hamiltonian
from hinqs.sqd.solvers import solve_direct
from hinqs.subspace.expansion import plan_strings, teacher_energy_and_diagonal
from hinqs.subspace.first_order import first_order_determinants
from hinqs.subspace.settings import ExpansionSettings

pytestmark = pytest.mark.usefixtures("one_solver_thread")
EXPANSION = ExpansionSettings(strings=6, top_strings=8, partner_strings=8)


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """A solved N2/6-31G state (frozen core) written as the diagonalize step writes it."""
    root = tmp_path_factory.mktemp("reuse")
    ham = load_hamiltonian(build_hamiltonian("n2", root / "n2"))
    rng = np.random.default_rng(5)
    strings = np.sort(random_strings(ham.norb, ham.nelec[0], 60, rng)).astype(np.int64)
    strs = [strings, strings]
    out = solve_direct(strs[0], strs[1], ham.hcore, ham.eri, ham.nelec, solver_settings(solver="direct"))
    path = root / "state.npz"
    write_state(path, out.state, out.energy + ham.ecore, 0, hamiltonian_id(ham.meta))
    return ham, read_state(path, sort=True), root


def test_the_stored_energy_is_the_state_s_rayleigh_quotient_in_its_own_integrals(solved):
    ham, state, _ = solved
    energy = solved_energy(state, ham)
    computed, _ = teacher_energy_and_diagonal(state, ham.hcore, ham.eri, ham.nelec)
    assert energy is not None and energy == pytest.approx(computed, abs=1e-11)


def test_other_integrals_or_no_record_compute_it_again(solved):
    """A teacher from before the natural-orbital turn (the same strings, other integrals) and a
    state without the record (an older file, a hand-made one) give None: the caller computes."""
    ham, state, root = solved
    _, rotation = natural_rotation(np.diag(np.linspace(2, 0, ham.norb)) + 0.01)
    hcore, eri = rotate_integrals(ham.hcore, ham.eri, rotation)
    rotated = load_hamiltonian(write_hamiltonian(root / "rotated", hcore, eri, ham.nelec, ham.ecore, {}))
    assert hamiltonian_id(rotated.meta) != hamiltonian_id(ham.meta)
    assert solved_energy(state, rotated) is None
    bare = GroundState(state.strs_a, state.strs_b, state.amplitudes, energy=state.energy)
    assert solved_energy(bare, ham) is None


def test_reusing_it_selects_the_same_strings_and_first_order_determinants(solved):
    ham, state, _ = solved
    energy = solved_energy(state, ham)
    grid_a, grid_b = np.meshgrid(state.strs_a, state.strs_b, indexing="ij")  # every determinant of the state
    pairs = (grid_a.ravel().astype(np.uint64), grid_b.ravel().astype(np.uint64))
    subspace = Determinants(*pairs, np.ones(grid_a.size, np.int64))
    fresh = plan_strings(state, subspace, ham.hcore, ham.eri, ham.nelec, EXPANSION, 20)
    reused = plan_strings(state, subspace, ham.hcore, ham.eri, ham.nelec, EXPANSION, 20, energy)
    assert [p.added.tolist() for p in fresh] == [p.added.tolist() for p in reused]
    assert all(p.keep is not None for p in fresh)  # the cap of 20 strings binds: evictions were ranked too
    assert [p.keep.tolist() for p in fresh] == [p.keep.tolist() for p in reused]
    one = first_order_determinants(state, ham.hcore, ham.eri, ham.nelec, EXPANSION, 50)
    two = first_order_determinants(state, ham.hcore, ham.eri, ham.nelec, EXPANSION, 50, energy)
    assert np.array_equal(one.alpha, two.alpha) and np.array_equal(one.beta, two.beta)
    assert np.allclose(one.weight, two.weight, rtol=1e-9, atol=0)
