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


def test_sampled_pt2_is_unbiased_and_its_error_bar_is_honest(n2):
    """Batches of 30 x 30 (10 of the 36 connected strings per spin drawn each time): the mean
    of many batches lands on the complete sum within its standard error, and the error bar of
    a 4-batch estimate covers the complete sum about as often as a standard error should."""
    strings, out = _variational(n2, 20, seed=1)
    args = (n2.hcore, n2.eri, n2.ecore, tuple(n2.nelec), strings, strings, out.state.amplitudes)
    complete = en_pt2(*args, 10**7)
    many = en_pt2(*args, 30 * 30, batches=300, rng=np.random.default_rng(5))
    assert not many.complete and many.batches == 300 and many.product_shape[0] < 56
    assert many.connected_strings == (36, 36)
    assert abs(many.e_pt2 - complete.e_pt2) < 4 * many.e_pt2_error
    assert many.e_pt2_error < abs(complete.e_pt2) / 10
    # <c|H|c> summed in two different embeddings: equal to rounding, not bit for bit
    assert many.e_var == pytest.approx(complete.e_var, abs=1e-10)
    z = []
    for seed in range(40):
        few = en_pt2(*args, 30 * 30, batches=4, rng=np.random.default_rng(100 + seed))
        z.append((few.e_pt2 - complete.e_pt2) / few.e_pt2_error)
    inside = np.mean(np.abs(z) < 2)  # a t-distribution with 3 degrees of freedom: about 0.86
    assert 0.6 < inside <= 1.0


def test_sampled_pt2_follows_its_stream_only(n2):
    strings, out = _variational(n2, 20, seed=1)
    args = (n2.hcore, n2.eri, n2.ecore, tuple(n2.nelec), strings, strings, out.state.amplitudes, 30 * 30)
    lines: list[str] = []
    one = en_pt2(*args, batches=3, rng=np.random.default_rng(7), report=lines.append)
    assert len(lines) == 4 and lines[-1].startswith("pt2 batch 3/3")  # a line per batch: alive
    again = en_pt2(*args, batches=3, rng=np.random.default_rng(7))
    other = en_pt2(*args, batches=3, rng=np.random.default_rng(8))
    assert (one.e_pt2, one.e_pt2_error) == (again.e_pt2, again.e_pt2_error)
    assert one.e_pt2 != other.e_pt2
    with pytest.raises(ValueError, match="random stream"):
        en_pt2(*args)
    assert en_pt2(*args[:-1], 100) is None  # the variational space alone exceeds the budget


def test_connected_strings_are_the_single_and_double_excitations(n2):
    """Against popcount: a string is connected iff it differs from some subspace string by
    moving one or two electrons; its parent weight sums those subspace strings' weights."""
    from pyscf.fci import cistring

    from hinqs.subspace.pt2 import connected_strings

    rng = np.random.default_rng(3)
    subspace = random_strings(n2.norb, 5, 6, rng).astype(np.int64)
    weight = rng.random(len(subspace))
    found, mass = connected_strings(subspace, weight, n2.norb)
    every = np.asarray(cistring.make_strings(range(n2.norb), 5), np.int64)
    moved = np.array([[bin(int(x) ^ int(s)).count("1") // 2 for s in subspace] for x in every])
    expect = (moved.min(axis=1) >= 1) & (moved.min(axis=1) <= 2)
    assert found.tolist() == every[expect].tolist()
    parents = (moved >= 1) & (moved <= 2)
    assert np.allclose(mass, (parents[expect] * weight).sum(axis=1))


def test_inclusion_probabilities_fill_the_budget_heaviest_first():
    from hinqs.subspace.pt2 import inclusion_probabilities

    score = np.array([10.0, 5.0, 1.0, 1.0, 1.0, 0.0, 0.5])
    for expected in (1, 2, 3.5, 5):
        pi = inclusion_probabilities(score, expected)
        assert pi.sum() == pytest.approx(expected) and pi.max() <= 1.0 and pi[5] == 0.0
        free = (pi < 1.0) & (score > 0)
        assert np.allclose(pi[free] / score[free], pi[free][0] / score[free][0])  # proportional below 1
        assert np.all(np.diff(pi[np.argsort(-score)]) <= 1e-15)  # never more for a lighter string
    assert inclusion_probabilities(score, 2)[0] == 1.0 and inclusion_probabilities(score, 1)[0] < 1.0
    assert inclusion_probabilities(score, 6).tolist() == [1, 1, 1, 1, 1, 0, 1]


def test_a_saturated_spin_leaves_its_budget_to_the_other():
    """Triplet-like shapes: once every beta string fits, alpha gets the rest of the budget."""
    from hinqs.subspace.pt2 import _string_budgets

    assert _string_budgets(398, 253, 23, (4, 2), 10_000_000) == (8855, 253)  # complete
    assert _string_budgets(100, 100, 26, (5, 5), 90_000) == (300, 300)
    a, b = _string_budgets(398, 253, 23, (4, 2), 1_000_000)
    assert b == 253 and a == 1_000_000 // 253
