"""The EN-PT2 error bar against an independent computation in the full CI space (real PySCF).

A variational state over a product space of a few strings is corrected by
sum_{a outside} |<a|H|Psi>|^2 / (E_var - H_aa). The reference here builds H|Psi> and H's
diagonal with PySCF's full-space FCI kernels (``direct_spin1``), which share no code path
with the selected-CI product-space kernels ``hinqs.subspace.pt2`` uses.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqd_helpers import n2_sto3g, random_strings

from hinqs.sqd.solvers import solve_lean
from hinqs.subspace.pt2 import en_pt2, extrapolate

pytestmark = pytest.mark.usefixtures("one_solver_thread")


@pytest.fixture(scope="module")
def n2(tmp_path_factory):
    """N2/STO-3G, two 1s frozen: 8 orbitals, (5, 5), 3,136 determinants."""
    return n2_sto3g(tmp_path_factory.mktemp("n2"), 1.0977)


def _variational(ham, n_strings: int, seed: int):
    from sqd_helpers import solver_settings

    strings = random_strings(ham.norb, ham.nelec[0], n_strings, np.random.default_rng(seed))
    out = solve_lean(strings, strings, ham.hcore, ham.eri, ham.nelec, solver_settings(solver="lean"))
    return strings, out


def _full_space_pt2(ham, strings, amplitudes) -> tuple[float, float]:
    """E_var and EN-PT2 with Psi embedded in the full CI vector (direct_spin1 kernels)."""
    from pyscf.fci import cistring, direct_spin1

    norb, nelec = ham.norb, tuple(ham.nelec)
    every = [np.asarray(cistring.make_strings(range(norb), n)) for n in nelec]
    psi = np.zeros((len(every[0]), len(every[1])))
    rows = np.searchsorted(every[0], strings.astype(np.int64))
    cols = np.searchsorted(every[1], strings.astype(np.int64))
    psi[np.ix_(rows, cols)] = amplitudes / np.linalg.norm(amplitudes)
    h2e = direct_spin1.absorb_h1e(ham.hcore, ham.eri, norb, nelec, 0.5)
    hpsi = direct_spin1.contract_2e(h2e, psi, norb, nelec).reshape(psi.shape)
    hdiag = direct_spin1.make_hdiag(ham.hcore, ham.eri, norb, nelec).reshape(psi.shape)
    e_var = float(np.vdot(psi, hpsi))
    outside = np.ones(psi.shape, bool)
    outside[np.ix_(rows, cols)] = False
    return e_var + ham.ecore, float(np.sum(hpsi[outside] ** 2 / (e_var - hdiag[outside])))


def test_complete_pt2_equals_the_full_space_sum(n2):
    strings, out = _variational(n2, 20, seed=1)
    estimate = en_pt2(n2.hcore, n2.eri, n2.ecore, tuple(n2.nelec), strings, strings, out.state.amplitudes, 10**7)
    e_var, e_pt2 = _full_space_pt2(n2, strings, out.state.amplitudes)
    assert estimate.complete
    assert abs(estimate.e_var - e_var) < 1e-10 and abs(estimate.e_var - out.energy - n2.ecore) < 1e-9
    assert estimate.e_pt2 < -1e-3  # 20 of 56 strings: a real correction
    assert abs(estimate.e_pt2 - e_pt2) < 1e-10


def test_pt2_brings_the_energy_close_to_fci(n2):
    from hinqs.chem.fci import fci_energy

    e_fci = fci_energy(n2.hcore, n2.eri, n2.nelec) + n2.ecore
    e_var, e_total = [], []
    for n_strings in (20, 28, 36):
        strings, out = _variational(n2, n_strings, seed=2)
        estimate = en_pt2(n2.hcore, n2.eri, n2.ecore, tuple(n2.nelec), strings, strings, out.state.amplitudes, 10**7)
        assert abs(estimate.e_total - e_fci) < abs(estimate.e_var - e_fci) / 3
        e_var.append(estimate.e_var)
        e_total.append(estimate.e_pt2)
    fit = extrapolate(e_var, e_total)
    assert fit is not None and fit["points"] == 3 and fit["spread"] is not None
    assert abs(fit["energy"] - e_fci) < abs(e_var[-1] - e_fci)


def test_screened_pt2_is_partial_and_says_so(n2):
    strings, out = _variational(n2, 20, seed=1)
    complete = en_pt2(n2.hcore, n2.eri, n2.ecore, tuple(n2.nelec), strings, strings, out.state.amplitudes, 10**7)
    screened = en_pt2(n2.hcore, n2.eri, n2.ecore, tuple(n2.nelec), strings, strings, out.state.amplitudes, 30 * 30)
    assert not screened.complete and screened.product_shape == (30, 30)
    assert complete.e_pt2 < screened.e_pt2 < 0  # fewer external determinants, smaller correction
    # <c|H|c> summed in two different embeddings: equal to rounding, not bit for bit
    assert screened.e_var == pytest.approx(complete.e_var, abs=1e-10)
    too_small = en_pt2(n2.hcore, n2.eri, n2.ecore, tuple(n2.nelec), strings, strings, out.state.amplitudes, 100)
    assert too_small is None


def test_a_saturated_spin_leaves_its_budget_to_the_other():
    """Triplet-like shapes: once every beta string fits, alpha gets the rest of the budget."""
    from hinqs.subspace.pt2 import _string_budgets

    assert _string_budgets(398, 253, 23, (4, 2), 10_000_000) == (8855, 253)  # complete
    assert _string_budgets(100, 100, 26, (5, 5), 90_000) == (300, 300)
    a, b = _string_budgets(398, 253, 23, (4, 2), 1_000_000)
    assert b == 253 and a == 1_000_000 // 253
