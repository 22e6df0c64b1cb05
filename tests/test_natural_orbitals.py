"""The state's own natural orbitals: its density from the kernel's links against PySCF, and
the rotated integrals leaving the FCI energy where it was (real integrals, closed and open shells)."""

from __future__ import annotations

import numpy as np
import pytest
from sqd_helpers import build_hamiltonian, random_strings

from hinqs.chem.rotation import natural_rotation, rotate_integrals
from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.kernel.density import one_rdm

pytestmark = pytest.mark.usefixtures("one_solver_thread")


@pytest.fixture(scope="module")
def hamiltonians(tmp_path_factory):
    root = tmp_path_factory.mktemp("natural")
    return {name: load_hamiltonian(build_hamiltonian(name, root / name)) for name in ("lih", "nh")}


@pytest.mark.parametrize("name", ["lih", "nh"])
def test_density_from_links_equals_pyscf_on_a_selected_space(hamiltonians, name):
    from pyscf.fci import selected_ci

    ham = hamiltonians[name]
    rng = np.random.default_rng(3)
    strs_a = np.sort(random_strings(ham.norb, ham.nelec[0], 40, rng)).astype(np.int64)
    strs_b = np.sort(random_strings(ham.norb, ham.nelec[1], 30, rng)).astype(np.int64)
    c = rng.standard_normal((len(strs_a), len(strs_b)))
    dm_a, dm_b = one_rdm(c, strs_a, strs_b, ham.norb, ham.nelec)
    vec = selected_ci._as_SCIvector(c / np.linalg.norm(c), (strs_a, strs_b))
    ref_a, ref_b = selected_ci.make_rdm1s(vec, ham.norb, ham.nelec)
    assert np.abs(dm_a - ref_a).max() < 1e-12
    assert np.abs(dm_b - ref_b).max() < 1e-12
    assert np.trace(dm_a) == pytest.approx(ham.nelec[0], abs=1e-12)


@pytest.mark.parametrize("name", ["lih", "nh"])
def test_rotating_into_the_fci_states_natural_orbitals_leaves_fci_unchanged(hamiltonians, name):
    from pyscf import fci

    ham = hamiltonians[name]
    solver = fci.direct_spin1.FCI()
    solver.conv_tol = 1e-12
    e0, civec = solver.kernel(ham.hcore, ham.eri, ham.norb, ham.nelec)
    dm_a, dm_b = solver.make_rdm1s(civec, ham.norb, ham.nelec)
    occupations, u = natural_rotation(dm_a + dm_b)
    assert occupations.sum() == pytest.approx(sum(ham.nelec))
    assert np.allclose(u.T @ u, np.eye(ham.norb), atol=1e-12)
    hcore, eri = rotate_integrals(ham.hcore, ham.eri, u)
    e1, civec1 = solver.kernel(hcore, eri, ham.norb, ham.nelec)
    assert e1 == pytest.approx(e0, abs=1e-9)
    # In its own natural orbitals the state's density is diagonal, occupations descending.
    rot_a, rot_b = solver.make_rdm1s(civec1, ham.norb, ham.nelec)
    total = rot_a + rot_b
    assert np.abs(total - np.diag(occupations)).max() < 1e-6


def _near_identity_density(
    n: int, seed: int, degenerate: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A density whose natural orbitals are a small rotation of the current ones, occupations
    not in index order (as in a real active space: virtuals cross), optionally a degenerate pair."""
    rng = np.random.default_rng(seed)
    occupations = np.sort(rng.uniform(0.0, 2.0, n))[::-1].copy()
    occupations[[3, 4]] = occupations[[4, 3]]  # orbital 3 less occupied than orbital 4
    if degenerate:
        occupations[list(degenerate)] = occupations[degenerate[0]]
    generator = 0.05 * rng.standard_normal((n, n))
    rotation = np.linalg.qr(np.eye(n) + generator - generator.T)[0]
    rotation *= np.sign(np.diag(rotation))
    return rotation @ np.diag(occupations) @ rotation.T, rotation


@pytest.mark.parametrize("degenerate", [None, (5, 6)])
def test_each_natural_orbital_takes_the_place_of_the_orbital_it_resembles(degenerate):
    """Strings carry over by label: orbital p's replacement must be the natural orbital nearest p,
    whatever the occupations' order, and a degenerate pair must not turn by an arbitrary angle."""
    dm, rotation = _near_identity_density(8, 1, degenerate)
    occupations, u = natural_rotation(dm)
    assert np.allclose(u @ np.diag(occupations) @ u.T, dm, atol=1e-12)
    assert np.allclose(u.T @ u, np.eye(8), atol=1e-12)
    assert np.all(np.abs(np.diag(u)) > 0.9) and np.all(np.diag(u) > 0)
    assert occupations[3] < occupations[4]  # the crossing kept, not sorted away
    if degenerate is None:
        assert np.abs(u - rotation).max() < 1e-10  # exactly the rotation the density was built with
    again = natural_rotation(dm.copy())
    assert np.array_equal(again[1], u) and np.array_equal(again[0], occupations)


def test_a_natural_density_gives_the_identity():
    occupations = np.array([1.99, 1.97, 1.9, 0.05, 0.08, 0.01])
    n, u = natural_rotation(np.diag(occupations))
    assert np.array_equal(u, np.eye(6)) and np.array_equal(n, occupations)
