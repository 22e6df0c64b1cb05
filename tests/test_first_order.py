"""The Hamiltonian-informed target: first-order amplitudes against the full CI space, and a
network trained on them putting its mass where the state is going (real PySCF, real torch)."""

from __future__ import annotations

import numpy as np
import pytest
from sqd_helpers import n2_sto3g, random_strings

from hinqs.io.files import GroundState
from hinqs.sqd.solvers import solve_lean
from hinqs.subspace.first_order import first_order_determinants
from hinqs.subspace.settings import ExpansionSettings

pytestmark = pytest.mark.usefixtures("one_solver_thread")


@pytest.fixture(scope="module")
def n2(tmp_path_factory):
    """N2/STO-3G, two 1s frozen: 8 orbitals, (5, 5), 3,136 determinants."""
    return n2_sto3g(tmp_path_factory.mktemp("n2"), 1.3)


def _state(ham, n_strings: int, seed: int) -> GroundState:
    from sqd_helpers import solver_settings

    strings = np.sort(random_strings(ham.norb, ham.nelec[0], n_strings, np.random.default_rng(seed)))
    out = solve_lean(strings, strings, ham.hcore, ham.eri, ham.nelec, solver_settings(solver="lean"))
    return GroundState(strings, strings, out.state.amplitudes)


def _full_space_first_order(ham, state: GroundState) -> dict[tuple[int, int], float]:
    """|<x|H|Psi>/(E - H_xx)|^2 for every determinant outside the state (direct_spin1 kernels)."""
    from pyscf.fci import cistring, direct_spin1

    norb, nelec = ham.norb, tuple(int(n) for n in ham.nelec)
    every = [np.asarray(cistring.make_strings(range(norb), n)) for n in nelec]
    psi = np.zeros((len(every[0]), len(every[1])))
    rows = np.searchsorted(every[0], state.strs_a.astype(np.int64))
    cols = np.searchsorted(every[1], state.strs_b.astype(np.int64))
    psi[np.ix_(rows, cols)] = state.amplitudes / np.linalg.norm(state.amplitudes)
    h2e = direct_spin1.absorb_h1e(ham.hcore, ham.eri, norb, nelec, 0.5)
    hpsi = direct_spin1.contract_2e(h2e, psi, norb, nelec).reshape(psi.shape)
    hdiag = direct_spin1.make_hdiag(ham.hcore, ham.eri, norb, nelec).reshape(psi.shape)
    energy = float(np.vdot(psi, hpsi))
    t2 = hpsi**2 / np.maximum(hdiag - energy, 1e-3) ** 2
    t2[np.ix_(rows, cols)] = 0.0
    return {(int(every[0][i]), int(every[1][j])): float(t2[i, j]) for i, j in zip(*np.nonzero(t2 > 1e-14), strict=True)}


def test_first_order_weights_equal_the_full_space_ones(n2):
    """With every string a parent and a partner, the block holds all of Psi: the weights must be exact."""
    state = _state(n2, 12, seed=3)
    settings = ExpansionSettings(strings=0, top_strings=12, partner_strings=12)
    nelec = (int(n2.nelec[0]), int(n2.nelec[1]))
    found = first_order_determinants(state, n2.hcore, n2.eri, nelec, settings, 10**6)
    exact = _full_space_first_order(n2, state)
    assert len(found) > 100
    for a, b, w in zip(found.alpha.tolist(), found.beta.tolist(), found.weight.tolist(), strict=True):
        assert w == pytest.approx(exact[(a, b)], rel=1e-8, abs=1e-14), (a, b)
    # The heaviest external determinants of the full space are among those found.
    heaviest = sorted(exact, key=exact.get, reverse=True)[:20]
    assert set(heaviest) <= set(zip(found.alpha.tolist(), found.beta.tolist(), strict=True))
    # A limit keeps the heaviest (whole groups of equal weight).
    top = first_order_determinants(state, n2.hcore, n2.eri, nelec, settings, 50)
    assert 0 < len(top) <= 50 and top.weight.min() >= np.sort(found.weight)[-len(top)]


def test_training_on_the_first_order_target_moves_mass_outside_the_state(n2):
    """The same model and stream trained on |c|^2 and on |Psi + Psi1|^2: only the latter learns
    the first-order determinants (measured mass on them, after training)."""
    from hinqs.nqs.checkpoint import init_checkpoint
    from hinqs.nqs.teacher import teacher_from_amplitudes
    from hinqs.nqs.trainer import train

    state = _state(n2, 12, seed=3)
    nelec = (int(n2.nelec[0]), int(n2.nelec[1]))
    settings = ExpansionSettings(strings=0, top_strings=4, partner_strings=4)
    found = first_order_determinants(state, n2.hcore, n2.eri, nelec, settings, 2000)
    kwargs = {"max_determinants": 10**6, "min_weight": 1e-12}
    plain = teacher_from_amplitudes(state.strs_a, state.strs_b, state.amplitudes, **kwargs)
    informed = teacher_from_amplitudes(
        state.strs_a, state.strs_b, state.amplitudes, first_order=(found.alpha, found.beta, found.weight), **kwargs
    )
    assert informed.n_first_order == int((found.weight >= 1e-12).sum()) and 0 < informed.first_order_share < 0.5
    half = teacher_from_amplitudes(
        state.strs_a, state.strs_b, state.amplitudes, first_order=(found.alpha, found.beta, found.weight),
        first_order_share=0.5, **kwargs,
    )  # fmt: skip
    assert half.first_order_share == pytest.approx(0.5)
    np.testing.assert_allclose(half.probs[half.in_state] * 2, plain.probs)  # the state's part keeps its shape
    outside = ~informed.in_state
    fo_alpha, fo_beta = informed.alpha[outside], informed.beta[outside]
    masses = {}
    for name, teacher in (("plain", plain), ("informed", informed)):
        nqs = {"d_model": 16, "n_layers": 1, "n_heads": 2, "learning_rate": 3e-3}
        model = init_checkpoint(n2.norb, nelec, nqs, seed=5, system="n2")
        report = train(model, teacher, 1, 80, smoothing=0.0, batch_size=256)  # informed / plain: 9.7 at 80 epochs
        masses[name] = float(np.exp(model.model.log_prob(fo_alpha, fo_beta)).sum())
        if name == "informed":
            assert report.first_order_mass_after == pytest.approx(masses[name], rel=1e-5)
    assert masses["informed"] > 2 * masses["plain"], masses
