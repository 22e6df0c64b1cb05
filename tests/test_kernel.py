"""hinqs' product-space kernel against PySCF's selected CI, and the direct solver against solve_fermion.

Real integrals (hinqs' own prepare path): N2/6-31G with two 1s frozen (closed shell, frozen
core), NH triplet (open shell, one frozen), LiH (no frozen core). Random coefficient vectors
over random subspaces (singles and doubles of HF, so that links both hit and miss).
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

import numpy as np
import pytest
from sqd_helpers import computed_mask, kernel_hamiltonians, random_strings, solver_settings

from hinqs.kernel import ProductHamiltonian
from hinqs.kernel.operator import _pair_order
from hinqs.sqd.solvers import solve_direct, solve_with_solve_fermion
from hinqs.threads import numba_threads

pytestmark = pytest.mark.usefixtures("one_solver_thread")


@pytest.fixture(scope="module")
def hamiltonians(tmp_path_factory):
    return kernel_hamiltonians(tmp_path_factory.mktemp("kernel"))


def _subspace(ham, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = random_strings(ham.norb, ham.nelec[0], n, rng)
    b = a if ham.nelec[0] == ham.nelec[1] and seed % 2 == 0 else random_strings(ham.norb, ham.nelec[1], n, rng)
    return a.astype(np.int64), b.astype(np.int64)


def _pyscf(ham, strs, c):
    """PySCF's selected-CI H C, diagonal and S^2 C on the same product space."""
    from pyscf import ao2mo
    from pyscf.fci import direct_spin1, selected_ci

    norb, nelec = ham.norb, ham.nelec
    h2e = ao2mo.restore(1, direct_spin1.absorb_h1e(ham.hcore, ham.eri, norb, nelec, 0.5), norb)
    link = selected_ci.SelectedCI().gen_linkstr(norb, nelec, True, ci_strs=strs)
    vec = selected_ci._as_SCIvector(c, strs)
    hc = np.asarray(selected_ci.contract_2e(h2e, vec, norb, nelec, link)).reshape(c.shape)
    hdiag = np.asarray(selected_ci.make_hdiag(ham.hcore, ham.eri, strs, norb, nelec)).reshape(c.shape)
    s2c = np.asarray(selected_ci.contract_ss(vec, norb, nelec)).reshape(c.shape)
    return hc, hdiag, s2c


@pytest.mark.parametrize("name,seed", [("n2", 0), ("n2", 1), ("nh", 1), ("lih", 0)])
def test_kernel_equals_pyscf_contract_2e(hamiltonians, name, seed):
    ham = hamiltonians[name]
    strs = _subspace(ham, 60, seed)
    c = np.random.default_rng(seed + 10).standard_normal((len(strs[0]), len(strs[1])))
    op = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, *strs)
    hc, hdiag, s2c = _pyscf(ham, strs, c)
    scale = np.abs(hc).max()
    assert np.abs(op.apply(c) - hc).max() < 1e-12 * max(1.0, scale)
    assert np.abs(op.diagonal() - hdiag).max() < 1e-12 * max(1.0, np.abs(hdiag).max())
    assert np.abs(op.apply_spin_square(c) - s2c).max() < 1e-12 * max(1.0, np.abs(s2c).max())


def test_rectangular_product_is_the_embedded_square_product(hamiltonians):
    """From S into T ⊃ S: equal to the square product over T with C embedded (zeros outside S)."""
    ham = hamiltonians["nh"]
    rng = np.random.default_rng(5)
    big_a = random_strings(ham.norb, ham.nelec[0], 50, rng).astype(np.int64)
    big_b = random_strings(ham.norb, ham.nelec[1], 30, rng).astype(np.int64)
    sa = np.sort(rng.choice(big_a, len(big_a) // 2, replace=False))
    sb = np.sort(rng.choice(big_b, max(1, len(big_b) // 2), replace=False))
    c = rng.standard_normal((len(sa), len(sb)))
    embedded = np.zeros((len(big_a), len(big_b)))
    embedded[np.ix_(np.searchsorted(big_a, sa), np.searchsorted(big_b, sb))] = c
    square = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, big_a, big_b)
    rect = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, sa, sb, big_a, big_b)
    assert np.abs(rect.apply(c) - square.apply(embedded)).max() < 1e-12
    assert np.array_equal(rect.diagonal(), square.diagonal())


def _dense_pt2_terms(ham, sa, sb, big, c):
    """E_var of ``c`` over ``sa x sb`` and, over the dense product into ``big x big``: H C, H's
    diagonal, the external determinants kept in the sum and those below E_var (intruders)."""
    e_var = float(np.vdot(c, ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, sa, sb).apply(c)))
    rect = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, sa, sb, big, big)
    hc, hdiag = rect.apply(c), rect.diagonal()
    outside = np.ones(hc.shape, bool)
    outside[np.ix_(np.searchsorted(big, sa), np.searchsorted(big, sb))] = False
    connected = outside & (hc != 0)
    below = connected & (hdiag < e_var)
    return e_var, hc, hdiag, connected & ~below, below


def test_pt2_rows_equal_the_dense_sum(hamiltonians):
    """The streamed EN-PT2 sum equals the same sum over the dense rectangular product, weights included."""
    ham = hamiltonians["n2"]
    rng = np.random.default_rng(7)
    big = random_strings(ham.norb, ham.nelec[0], 80, rng).astype(np.int64)
    sa = np.sort(rng.choice(big, 25, replace=False))
    sb = np.sort(rng.choice(big, 20, replace=False))
    c = rng.standard_normal((len(sa), len(sb)))
    c /= np.linalg.norm(c)
    rect = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, sa, sb, big, big)
    w_a, w_b = rng.uniform(1, 3, len(big)), rng.uniform(1, 3, len(big))
    # a random vector lies high: many connected determinants sit below it (intruders), and their
    # terms, whose denominators changed sign, are counted apart and left out of the sum
    e_var, hc, hdiag, keep, below = _dense_pt2_terms(ham, sa, sb, big, c)
    assert np.count_nonzero(below) > 0 and np.count_nonzero(keep) > 0
    expected = float(w_a @ np.where(keep, hc**2 / np.where(keep, e_var - hdiag, 1.0), 0.0) @ w_b)
    total, count = rect.pt2(c, e_var, w_a, w_b)
    assert count == np.count_nonzero(keep)
    assert abs(total - expected) < 1e-12 * abs(expected)
    assert rect.pt2_rows(c, e_var, None, w_b)[2].sum() == np.count_nonzero(below)


def test_pt2_rows_of_a_symmetric_state_sum_each_pair_once_and_equal_the_dense_sum(hamiltonians):
    """C = C^T over one string set (a singlet from the mirrored solve): the rows sum each pair of
    determinants (x, y), (y, x) once, counted twice; the total, terms and intruders are the
    dense sum's, while the rows split it otherwise than the unpaired rows do."""
    ham = hamiltonians["n2"]
    rng = np.random.default_rng(5)
    big = random_strings(ham.norb, ham.nelec[0], 80, rng).astype(np.int64)
    s = np.sort(rng.choice(big, 25, replace=False))
    c = rng.standard_normal((len(s), len(s)))
    c = c + c.T
    c /= np.linalg.norm(c)
    rect = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, s, s, big, big)
    assert rect.pairs_mirror(c) and not rect.pairs_mirror(c + 1e-9 * np.triu(c))
    e_var, hc, hdiag, keep, below = _dense_pt2_terms(ham, s, s, big, c)
    expected = float(np.sum(np.where(keep, hc**2 / np.where(keep, e_var - hdiag, 1.0), 0.0)))
    sums, counts, intruders = rect.pt2_rows(c, e_var, paired=True)
    # Each pair takes the terms of the one its rank order picks (hinqs.kernel.operator._pair_order)
    # for both: the dense sum taken the same way is the rows' to summation order ...
    order = _pair_order(big)
    terms = np.where(keep, hc**2 / np.where(keep, e_var - hdiag, 1.0), 0.0)
    upper = order[None, :] > order[:, None]
    paired = 2.0 * float(np.sum(terms[upper])) + float(np.trace(terms))
    assert abs(sums.sum() - paired) < 1e-12 * abs(paired)
    # ... and the whole dense sum's to the rounding of the pairs' denominators: H_xx of (x, y) and
    # (y, x) differ in the last bits (summed in another order), which small denominators magnify.
    rounding = 64 * np.finfo(float).eps * float(np.max(np.abs(hdiag)))
    magnified = rounding * float(np.sum(np.where(keep, (hc / np.where(keep, e_var - hdiag, 1.0)) ** 2, 0.0)))
    assert abs(paired - expected) < 1e-12 * abs(expected) + 2 * magnified
    assert counts.sum() == np.count_nonzero(keep) and intruders.sum() == np.count_nonzero(below) > 0
    unpaired = rect.pt2_rows(c, e_var)[0]
    assert abs(unpaired.sum() - expected) < 1e-12 * abs(expected) and not np.allclose(sums, unpaired)


def test_kernel_bits_do_not_depend_on_threads(hamiltonians):
    ham = hamiltonians["n2"]
    strs = _subspace(ham, 150, 0)
    c = np.random.default_rng(3).standard_normal((len(strs[0]), len(strs[1])))
    op = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, *strs)
    with numba_threads(1):
        one = op.apply(c)
    with numba_threads(2):
        two = op.apply(c)
    assert np.array_equal(one, two)


@pytest.mark.parametrize("name", ["lih", "nh", "n2"])
def test_direct_agrees_with_solve_fermion(hamiltonians, name):
    ham = hamiltonians[name]
    strs = _subspace(ham, 40, 0)
    target = 0.0 if ham.nelec[0] == ham.nelec[1] else 2.0
    for spin_sq in (None, target):
        settings = solver_settings(solver="direct", spin_sq=spin_sq)
        ref = solve_with_solve_fermion(*strs, ham.hcore, ham.eri, ham.nelec, settings)
        out = solve_direct(*strs, ham.hcore, ham.eri, ham.nelec, settings)
        assert out.converged and ref.converged
        assert abs(out.energy - ref.energy) < 1e-9
        assert abs(out.spin_sq - ref.spin_sq) < 1e-7
        overlap = abs(np.vdot(out.state.amplitudes, ref.state.amplitudes))
        assert overlap > 1 - 1e-8
        assert np.allclose(out.state.occ_a, ref.state.occ_a, atol=1e-7)


def test_direct_solve_is_identical_at_one_and_two_threads(hamiltonians):
    """A batch solved on 2 threads gives the run of 1 thread: every bit of energy and state."""
    from hinqs.threads import thread_limit

    ham = hamiltonians["n2"]
    strs = _subspace(ham, 120, 0)
    settings = solver_settings(solver="direct")
    outs = []
    for threads in (1, 2):
        with thread_limit(threads):
            outs.append(solve_direct(*strs, ham.hcore, ham.eri, ham.nelec, settings))
    assert outs[0].energy == outs[1].energy
    assert np.array_equal(outs[0].state.amplitudes, outs[1].state.amplitudes)
    assert outs[0].spin_sq == outs[1].spin_sq


def test_the_mirrored_solve_is_the_whole_solve_with_c_symmetric(hamiltonians):
    """One string set for both spins, a singlet: the solve that computes half of each product
    (each row a cyclic window of half its columns) and mirrors it (``spin_symmetry``, the
    default) keeps C = C^T to the last bit and gives the energy and state of the solve of every
    element (``spin_symmetry: false``); the products agree to rounding, bit for bit where
    computed."""
    from hinqs.sqd.solvers import WholeOperator

    ham = hamiltonians["n2"]
    strs = _subspace(ham, 120, 0)
    settings = solver_settings(solver="direct", conv_tol=1e-12)
    mirrored = solve_direct(*strs, ham.hcore, ham.eri, ham.nelec, settings)
    whole = solve_direct(*strs, ham.hcore, ham.eri, ham.nelec, replace(settings, spin_symmetry=False))
    assert mirrored.converged and whole.converged
    assert abs(mirrored.energy - whole.energy) < 1e-11 and abs(mirrored.spin_sq - whole.spin_sq) < 1e-9
    c = mirrored.state.amplitudes
    assert np.array_equal(c, c.T) and abs(abs(np.vdot(c, whole.state.amplitudes)) - 1) < 1e-9
    op = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, *strs)
    sigma, full = WholeOperator(op, mirrored=True).apply(c), op.apply(c)
    done = computed_mask(len(c))  # each row half its columns, every pair once
    assert np.array_equal(sigma[done], full[done]) and np.array_equal(sigma, sigma.T)
    assert np.max(np.abs(sigma - full)) < 1e-12 * np.max(np.abs(full))
    open_shell = hamiltonians["nh"]  # a triplet: n_alpha != n_beta, nothing to mirror
    assert not WholeOperator(ProductHamiltonian(open_shell.hcore, open_shell.eri, open_shell.nelec,
                                                *_subspace(open_shell, 20, 0)), mirrored=True).mirrored  # fmt: skip


def test_a_mirrored_start_is_the_lowest_determinant_and_its_spin_swapped_partner(hamiltonians):
    """Where the lowest diagonal lies off the product's diagonal, at an element its row does not
    compute, the mirrored start still holds it: both (x, y) and (y, x), not the zero the
    mirror of a one-element vector would give."""
    from hinqs.sqd.solvers import WholeOperator, _start_vector

    ham = hamiltonians["n2"]
    strs = _subspace(ham, 30, 0)
    op = WholeOperator(ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, *strs), mirrored=True)
    n = len(strs[0])
    done = computed_mask(n)
    x, y = np.argwhere(~done)[0]  # an element row x leaves to row y
    diagonal = op.diagonal().copy()
    diagonal[x, y] = diagonal[y, x] = diagonal.min() - 1.0
    start = _start_vector(op, diagonal.ravel(), solver_settings(solver="direct"), None, ham.nelec, ham.norb)
    start = start.reshape(n, n)
    assert start[x, y] == start[y, x] == 1.0 and np.count_nonzero(start) == 2


def test_a_root_of_another_spin_is_solved_again(tmp_path):
    """From an antisymmetric guess (a triplet in the S_z = 0 space) Davidson stays on the lowest
    triplet; the batch is solved again with the spin penalty and hands on the singlet (FCI).
    With ``spin_symmetry`` (the default) the solve keeps C = C^T, where no triplet lives: the
    same guess lands on the singlet at once."""
    from sqd_helpers import n2_sto3g

    from hinqs.chem.fci import fci_energy
    from hinqs.sqd.solvers import SOLVER_FUNCTIONS, solve

    ham = n2_sto3g(tmp_path, 1.0977)
    strings = np.array(sorted(sum(1 << i for i in occ) for occ in combinations(range(ham.norb), 5)), np.uint64)
    noise = np.random.default_rng(0).standard_normal((len(strings), len(strings)))
    triplet_guess = noise - noise.T
    e_fci = fci_energy(ham.hcore, ham.eri, ham.nelec)
    settings = solver_settings(solver="direct", spin_symmetry=False)
    plain = SOLVER_FUNCTIONS["direct"](strings, strings, ham.hcore, ham.eri, ham.nelec, settings, triplet_guess)
    assert plain.spin_sq == pytest.approx(2.0, abs=1e-6)  # the trap: a triplet root
    out = solve(strings, strings, ham.hcore, ham.eri, ham.nelec, settings, triplet_guess)
    assert out.spin_sq < 1e-6 and out.converged
    assert abs(out.energy - e_fci) < 1e-9
    assert any("solved again with the spin penalty" in w for w in out.warnings)
    mirrored = solve(strings, strings, ham.hcore, ham.eri, ham.nelec, solver_settings(solver="direct"), triplet_guess)
    assert mirrored.spin_sq < 1e-6 and mirrored.converged and abs(mirrored.energy - e_fci) < 1e-9
    assert not any("solved again" in w for w in mirrored.warnings)
    assert np.array_equal(mirrored.state.amplitudes, mirrored.state.amplitudes.T)
