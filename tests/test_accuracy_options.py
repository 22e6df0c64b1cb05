"""The accuracy options of the subspace step: PT2-ranked string expansion and the size caps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from conftest import renamed_files

from hinqs.config import load_config
from hinqs.io.determinants import Determinants, hartree_fock_strings
from hinqs.io.files import GroundState, read_determinants, write_determinants
from hinqs.loop.settings import ExpansionSettings, RunSettings
from hinqs.subspace.cap import cap_subspace, teacher_weights
from hinqs.subspace.expansion import (
    excitations,
    expand_subspace,
    hartree_fock_teacher,
    read_teacher_state,
    select_strings,
)
from hinqs.subspace.grow import grow_subspace

U = np.uint64


def _h2_chain(n: int = 4):
    """Integrals of a short H chain (STO-3G, RHF orbitals), norb = n, nelec = (n/2, n/2)."""
    from pyscf import ao2mo, gto, scf

    mol = gto.M(atom="; ".join(f"H 0 0 {0.9 * i}" for i in range(n)), basis="sto-3g", verbose=0)
    mf = scf.RHF(mol).run()
    c = mf.mo_coeff
    hcore = c.T @ mf.get_hcore() @ c
    eri = ao2mo.restore(1, ao2mo.full(mol, c), c.shape[1])
    return hcore, eri, (n // 2, n // 2)


def test_excitations_are_singles_and_doubles_with_the_same_electron_count():
    parent = np.array([0b000111], U)
    exc = excitations(parent, 6)
    assert len(exc) == 3 * 3 + 3 * 3  # singles 3x3, doubles C(3,2) x C(3,2)
    assert all(bin(int(x)).count("1") == 3 for x in exc)
    assert 0b000111 not in exc.tolist()
    assert len(np.unique(exc)) == len(exc)


def test_null_defaults_are_derived_from_the_system_and_explicit_values_win(tmp_path):
    from dataclasses import replace

    from hinqs.loop.defaults import MAX_AUTO_STRINGS, SystemSize, derive, hour_strings

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"systems": [{"name": "h2", "geometry": "H 0 0 0; H 0 0 0.74"}]}))
    config = load_config(path)
    assert config["subspace"]["max_strings"] is None and config["subspace"]["expansion"]["strings"] is None
    assert config["sqd"]["samples_per_batch"] is None and config["nqs"]["samples"] is None
    settings = RunSettings.from_config(config)
    # H2O/6-31G, (10e, 13o): 1,287 strings, 321 of them HF + singles + doubles
    h2o = settings.for_system(13, (5, 5))
    assert h2o.subspace.max_strings == 482 == math.ceil(1.5 * 321)
    assert h2o.subspace.expansion.strings == math.ceil(482 / 5)
    # one batch holds the whole subspace as far as the derived cap may grow: the batch cap (8 M)
    assert h2o.sqd.samples_per_batch == 8_000_000 >= 482**2 and h2o.nqs.samples == 4 * 482
    assert 482**2 / math.comb(13, 5) ** 2 < 0.25
    # a small space (LiH/6-31G, 3,025 determinants): no cap, the whole space in one batch
    assert derive(11, (2, 2)).max_strings == 0 and derive(11, (2, 2)).samples_per_batch == 3025
    # C2H4/STO-3G (16e, 14o) and a large space hit the fraction and the absolute ceiling
    assert derive(14, (8, 8)).max_strings == math.ceil(1.5 * (1 + 48 + 28 * 15))
    # N2/cc-pVDZ (26 orbitals): the hour on 2 cores binds (the cost model's 2,800), and a
    # larger space with more excitations per string gets fewer strings for the same hour
    assert derive(26, (5, 5)).max_strings == hour_strings(SystemSize(26, (5, 5))) == 2800
    assert hour_strings(SystemSize(40, (10, 10))) < 2800
    assert all(derive(n, (k, k)).max_strings <= MAX_AUTO_STRINGS for n in range(16, 64, 6) for k in (3, 6, 9))
    given = replace(
        settings,
        subspace=replace(settings.subspace, max_strings=0, expansion=replace(settings.subspace.expansion, strings=7)),
        sqd=replace(settings.sqd, samples_per_batch=300),
    )
    explicit = given.for_system(13, (5, 5))
    assert explicit.subspace.max_strings == 0 and explicit.subspace.expansion.strings == 7
    assert explicit.sqd.samples_per_batch == 300
    # An explicit cap scales what is derived from it (config/n2_ccpvdz.yaml: 400 strings per spin)
    capped = replace(settings, subspace=replace(settings.subspace, max_strings=400)).for_system(26, (5, 5))
    assert capped.subspace.max_strings == 400 and capped.subspace.expansion.strings == 80
    assert capped.nqs.samples == 1600 and capped.sqd.samples_per_batch == 160_000
    # The expansion's width: 256 parents and partners while the scoring product fits, then halved
    assert h2o.subspace.expansion.top_strings == h2o.subspace.expansion.partner_strings == 256
    assert derive(16, (5, 4)).expansion_width == 256  # CN/6-31G
    assert derive(26, (5, 5)).expansion_width == 32  # N2/cc-pVDZ: 65,780 strings x 32 partners
    assert derive(40, (10, 10)).expansion_width == 16  # the floor
    narrow = replace(settings.subspace.expansion, top_strings=16, partner_strings=32)
    mine = replace(settings, subspace=replace(settings.subspace, expansion=narrow)).for_system(13, (5, 5))
    assert (mine.subspace.expansion.top_strings, mine.subspace.expansion.partner_strings) == (16, 32)


def test_the_derived_expansion_width_bounds_the_scoring_product():
    """Every width above the floor keeps candidates x partners within the budget, and the next
    wider one would not fit (or the width is already the widest)."""
    from hinqs.loop.defaults import NARROWEST, SCORE_BUDGET, WIDEST, SystemSize

    for norb in range(6, 41, 2):
        for n in range(1, min(norb, 11)):
            size = SystemSize(norb, (n, n))
            width = size.expansion_width()

            def product(w: int, size: SystemSize = size) -> int:
                return min(size.n_strings, w * size.n_exc) * w

            assert NARROWEST <= width <= WIDEST
            assert width == NARROWEST or product(width) <= SCORE_BUDGET
            assert width == WIDEST or product(2 * width) > SCORE_BUDGET


def test_zero_turns_the_options_off():
    settings = ExpansionSettings(strings=0, top_strings=64, partner_strings=128)
    basis = Determinants(np.array([3, 5], U), np.array([3, 3], U), np.array([1, 2], np.int64))
    assert select_strings(hartree_fock_teacher(4, (2, 2)), np.eye(4), np.zeros((4,) * 4), (2, 2), settings)[0].size == 0
    assert cap_subspace(basis, 0, 4, (2, 2)) is basis


def test_pt2_expansion_from_hf_is_deterministic_and_lowers_the_energy():
    from pyscf.fci import selected_ci

    hcore, eri, nelec = _h2_chain(6)
    norb = hcore.shape[0]
    settings = ExpansionSettings(strings=4, top_strings=8, partner_strings=8)
    teacher = hartree_fock_teacher(norb, nelec)
    a1, b1 = select_strings(teacher, hcore, eri, nelec, settings)
    a2, b2 = select_strings(teacher, hcore, eri, nelec, settings)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    assert len(a1) == 4
    hf_a, _ = hartree_fock_strings(norb, nelec)
    assert hf_a not in a1.tolist()

    def energy(strings):
        s = np.unique(np.asarray(strings, np.int64))
        e, _ = selected_ci.kernel_fixed_space(selected_ci.SelectedCI(), hcore, eri, norb, nelec, (s, s))
        return e

    e_hf = energy([hf_a])
    e_new = energy([hf_a, *a1.tolist()])
    # PT2-chosen strings beat the same number of arbitrary (highest-index) excitations
    worst = excitations(np.array([hf_a], U), norb)[-4:]
    assert e_new < e_hf - 1e-3
    assert e_new <= energy([hf_a, *worst.tolist()]) + 1e-12


def test_open_shell_expansion_adds_strings_of_both_spins():
    hcore, eri, _ = _h2_chain(4)
    nelec = (2, 1)
    teacher = hartree_fock_teacher(4, nelec)
    a, b = select_strings(teacher, hcore, eri, nelec, ExpansionSettings(strings=2, top_strings=4, partner_strings=4))
    assert len(a) == len(b) == 4
    assert all(bin(int(x)).count("1") == 2 for x in a) and all(bin(int(x)).count("1") == 1 for x in b)


def test_expand_gives_new_determinants_the_largest_count():
    basis = Determinants(np.array([3, 5], U), np.array([3, 3], U), np.array([1, 7], np.int64))
    out = expand_subspace(basis, np.array([9, 3], U), np.array([3, 3], U))
    table = dict(zip(zip(out.alpha.tolist(), out.beta.tolist(), strict=True), out.counts.tolist(), strict=True))
    assert table == {(3, 3): 8, (5, 3): 7, (9, 3): 7}


def test_cap_evicts_smallest_weight_keeps_hf_and_protected():
    norb, nelec = 4, (2, 2)
    alpha = np.array([3, 5, 6, 9, 10], U)
    beta = np.array([3, 3, 3, 3, 3], U)
    counts = np.array([0, 5, 1, 2, 1], np.int64)
    basis = Determinants(alpha, beta, counts)
    teacher = GroundState(np.array([3, 6], U), np.array([3], U), np.array([[0.6], [0.8]]))
    w = teacher_weights(teacher, alpha, beta)
    assert w[2] == pytest.approx(0.64) and w[1] == 0.0
    capped = cap_subspace(basis, 3, norb, nelec, teacher, keep_alpha=np.array([10], U), keep_beta=np.array([3], U))
    kept = set(capped.alpha.tolist())
    # HF (3) and the protected (10) stay; then the highest max(|c|^2, count share): 6 (0.64) over 5 (0.56)
    assert kept == {3, 10, 6}
    assert math.isclose(float(capped.counts.sum()), 0 + 1 + 1)


def test_subspace_command_applies_options(tmp_path):
    """`hinqs subspace --config --teacher` adds expansion determinants and respects the cap."""
    from hinqs.cli import main
    from hinqs.io.hamiltonian import write_hamiltonian

    hcore, eri, nelec = _h2_chain(6)
    ham = write_hamiltonian(tmp_path / "ham", hcore, eri, nelec, 0.0, {})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "systems": [{"name": "h6", "geometry": "H 0 0 0; H 0 0 1"}],
                "subspace": {
                    "max_strings": 0,
                    "max_size": 6,
                    "expansion": {"strings": 3, "top_strings": 4, "partner_strings": 4},
                },
            }
        )
    )
    write_determinants(
        tmp_path / "s.npz",
        grow_subspace(
            None, Determinants(np.array([0b001011], U), np.array([0b000111], U), np.array([4], np.int64)), 6, nelec
        ),
    )
    teacher = tmp_path / "state.npz"
    np.savez(
        teacher,
        ci_strs_a=np.array([7, 11], U),
        ci_strs_b=np.array([7, 11], U),
        amplitudes=np.array([[0.9, 0.1], [0.1, 0.3]]),
    )
    argv = ["subspace", "--hamiltonian", ham, "--samples", tmp_path / "s.npz", "--config", cfg, "--teacher", teacher]
    with renamed_files() as written:  # the side file first (hinqs.io.atomic)
        assert main([str(x) for x in [*argv, "--out", tmp_path / "b.npz", "--stats", tmp_path / "b.json"]]) == 0
    assert written == ["b.json", "b.npz"]
    out = read_determinants(tmp_path / "b.npz")
    assert len(out) <= 6 and len(out) >= 4
    assert read_teacher_state(teacher).amplitudes.shape == (2, 2)
    # with the options off the step is the plain union
    plain_cfg = tmp_path / "plain.yaml"
    off = {"max_strings": 0, "expansion": {"strings": 0}}
    plain_cfg.write_text(yaml.safe_dump({"systems": [{"name": "h6", "geometry": "H 0 0 0; H 0 0 1"}], "subspace": off}))
    plain = ["subspace", "--hamiltonian", ham, "--samples", tmp_path / "s.npz", "--config", plain_cfg]
    assert main([str(x) for x in [*plain, "--teacher", teacher, "--out", tmp_path / "p.npz"]]) == 0
    assert len(read_determinants(tmp_path / "p.npz")) == 2


def test_expansion_from_hf_finds_single_strings_through_opposite_spin_doubles():
    """Against HF alone a single string scores zero (Brillouin); paired with the other spin's singles
    it carries the opposite-spin doubles, the largest correlation class, so expansion must pick some."""
    hcore, eri, nelec = _h2_chain(6)
    hf_a, _ = hartree_fock_strings(6, nelec)
    chosen, _ = select_strings(
        hartree_fock_teacher(6, nelec),
        hcore,
        eri,
        nelec,
        ExpansionSettings(strings=3, top_strings=4, partner_strings=4),
    )
    rank = [bin(int(x) ^ hf_a).count("1") // 2 for x in chosen]
    assert rank == [1, 1, 1]  # scored against the HF string alone they would rank last (seen: [2, 2, 2])
