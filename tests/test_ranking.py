"""Which strings the subspace keeps: whole groups of equal scores, never by integer order, and
immune to the rounding noise that a solve's thread count puts in the last bits."""

from __future__ import annotations

import numpy as np
import pytest

from hinqs.subspace.ranking import NO_SCORE, top_groups

pytestmark = pytest.mark.usefixtures("one_solver_thread")


def test_a_group_of_equal_scores_is_taken_whole_or_not_at_all():
    score = np.array([1.0, 3.0, 2.0, 2.0 * (1 + 1e-15), 0.5, 0.0])
    assert top_groups(score, 1).tolist() == [1]
    assert top_groups(score, 2).tolist() == [1]  # the pair at 2.0 does not fit: neither goes in
    assert top_groups(score, 3).tolist() == [1, 2, 3]
    assert top_groups(score, 10).tolist() == [0, 1, 2, 3, 4]  # the zero never


def test_must_take_entries_and_noise_scores():
    score = np.array([np.inf, 1e-3, 1e-20, 0.0, -1.0])
    assert top_groups(score, 1).tolist() == [0]
    assert top_groups(score, 5).tolist() == [0, 1]  # 1e-20 is below NO_SCORE: rounding noise of a zero
    assert NO_SCORE < 1e-3


def test_the_cut_does_not_follow_the_last_bits():
    """Scores with symmetry-equal pairs, perturbed by 1e-14 relative: every cut picks the same strings."""
    rng = np.random.default_rng(7)
    base = rng.random(400)
    score = np.concatenate([base, base[:150]])  # 150 degenerate pairs
    for trial in range(20):
        noisy = score * (1 + 1e-14 * np.random.default_rng(trial).standard_normal(len(score)))
        for limit in (1, 17, 100, 151, 300, 449):
            assert np.array_equal(top_groups(noisy, limit), top_groups(score, limit)), (trial, limit)


def _n2():
    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.config import complete_system

    system = {"name": "n2", "geometry": "N 0 0 0; N 0 0 1.0977", "basis": "sto-3g", "frozen_core": 2, "orbitals": "hf"}
    ints, _ = integrals_from_geometry(complete_system(system))
    return ints


def test_unconnected_sampled_strings_never_fill_the_cap():
    """HF teacher; the subspace also holds the triple excitations of the HF string, which no
    single or double reaches (zero PT2 against HF). Under a cap they are dropped, where the
    stable argsort used to keep them in ascending integer order until the cap was full."""
    from itertools import combinations

    from hinqs.io.determinants import Determinants, hartree_fock_strings
    from hinqs.subspace.expansion import hartree_fock_teacher, plan_strings
    from hinqs.subspace.settings import ExpansionSettings

    ints = _n2()
    norb, nelec = ints.hcore.shape[0], tuple(int(n) for n in ints.nelec)
    hf_a, _ = hartree_fock_strings(norb, nelec)  # 8 orbitals, 5 electrons per spin: 3 virtuals
    triples = np.array([hf_a ^ sum(1 << i for i in occ) ^ 0b11100000 for occ in combinations(range(5), 3)], np.uint64)
    assert all(bin(int(t)).count("1") == 5 for t in triples)
    subspace = Determinants(
        np.concatenate([[hf_a], triples]).astype(np.uint64),
        np.concatenate([[hf_a], triples]).astype(np.uint64),
        np.ones(len(triples) + 1, np.int64),
    )
    settings = ExpansionSettings(strings=5, top_strings=1, partner_strings=1)
    (plan,) = plan_strings(hartree_fock_teacher(norb, nelec), subspace, ints.hcore, ints.eri, nelec, settings, 12)
    assert len(plan.added) == 5 and plan.keep is not None
    assert hf_a in plan.keep.tolist()
    assert not set(triples.tolist()) & set(plan.keep.tolist())
    assert set(plan.keep.tolist()) == {hf_a, *plan.added.tolist()}


def test_the_network_is_credited_only_for_strings_the_expansion_did_not_propose():
    """Samples holding (a) doubles of the HF string, which the expansion proposes itself from an
    HF teacher, and (b) triples of it, which it cannot propose: without a cap both are kept,
    and only (b) counts as the network's."""
    from itertools import combinations

    from hinqs.io.determinants import Determinants, hartree_fock_strings
    from hinqs.io.hamiltonian import Hamiltonian
    from hinqs.subspace.build import build_subspace
    from hinqs.subspace.settings import ExpansionSettings, SubspaceSettings

    ints = _n2()
    norb, nelec = ints.hcore.shape[0], tuple(int(n) for n in ints.nelec)
    hf_a, _ = hartree_fock_strings(norb, nelec)
    doubles = [hf_a ^ (1 << i) ^ (1 << j) ^ (1 << 5) ^ (1 << 6) for i, j in combinations(range(5), 2)][:3]
    triples = [hf_a ^ sum(1 << i for i in occ) ^ 0b11100000 for occ in combinations(range(5), 3)][:2]
    sampled = np.array(doubles + triples, np.uint64)
    drawn = Determinants(sampled, sampled.copy(), np.ones(len(sampled), np.int64))
    ham = Hamiltonian(ints.hcore, ints.eri, norb, nelec, ints.ecore)
    settings = SubspaceSettings(max_strings=0, max_size=0, expansion=ExpansionSettings(2, 1, 4))
    _, report = build_subspace(settings, (norb, nelec), drawn, None, None, lambda: ham)
    assert report.stats["network_strings_kept"] == len(triples)
    assert report.stats["new_sampled_strings_kept"] >= len(triples)
