"""References for an antiferromagnet: a stretched hydrogen chain in site (Lowdin) orbitals, as an FCIDUMP.

With localized orbitals and no geometry, the aufbau determinant of the file's orbital order
doubly occupies half the sites; RHF is unstable towards UHF, whose broken-symmetry solution
lies far below it. prepare must find it, record determinants below aufbau, and the loop
must start from them and still reach PySCF's FCI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from pyscf import ao2mo, fci, gto, lo
from pyscf.fci import cistring
from pyscf.tools import fcidump

from hinqs.errors import InputError
from hinqs.io.determinants import Determinants
from hinqs.io.hamiltonian import reference_strings
from hinqs.subspace.expansion import hartree_fock_teacher
from hinqs.subspace.grow import grow_subspace

# Six H atoms 2.0 A apart: RHF 2.368, broken-symmetry UHF 2.819, FCI 2.847 Ha below zero (measured).
ATOMS, SPACING = 6, 2.0


def chain_fcidump(path) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray]:
    """The chain's integrals in Lowdin-orthogonalised AOs (one orbital per site, in chain order),
    written as an FCIDUMP; returns the core energy, the integrals and PySCF's FCI energy and vector."""
    mol = gto.M(atom="; ".join(f"H 0 0 {i * SPACING}" for i in range(ATOMS)), basis="sto-3g", verbose=0)
    sites = lo.orth_ao(mol, "lowdin")
    hcore = sites.T @ (mol.intor("int1e_kin") + mol.intor("int1e_nuc")) @ sites
    eri = ao2mo.restore(1, ao2mo.kernel(mol, sites), ATOMS)
    fcidump.from_integrals(str(path), hcore, eri, ATOMS, ATOMS, nuc=mol.energy_nuc(), ms=0, tol=0.0)
    e_fci, civec = fci.direct_spin1.kernel(hcore, eri, ATOMS, ATOMS, ecore=mol.energy_nuc())
    return mol.energy_nuc(), hcore, eri, e_fci, civec


def pyscf_diagonal(hcore, eri, ecore, alpha: int, beta: int) -> float:
    """<D|H|D> from PySCF's FCI diagonal (independent of hinqs' diagonal model)."""
    nelec = (ATOMS // 2, ATOMS // 2)
    hdiag = fci.direct_spin1.make_hdiag(hcore, eri, ATOMS, nelec).reshape(
        cistring.num_strings(ATOMS, nelec[0]), cistring.num_strings(ATOMS, nelec[1])
    )
    return float(hdiag[cistring.str2addr(ATOMS, nelec[0], alpha), cistring.str2addr(ATOMS, nelec[1], beta)]) + ecore


def test_broken_symmetry_references_start_a_loop_that_reaches_fci(tmp_path):
    from hinqs.config import validate_config
    from hinqs.loop.driver import run_loop
    from hinqs.loop.settings import RunSettings

    ecore, hcore, eri, e_fci, civec = chain_fcidump(tmp_path / "h6.fcidump")
    config = {
        # the file's site orbitals (``auto`` would take the UHF's natural orbitals: tests/test_open_shells.py)
        "systems": [{"name": "h6", "fcidump": str(tmp_path / "h6.fcidump"), "orbitals": "hf"}],
        "nqs": {"samples": 10, "epochs": 20, "device": "cpu"},
        "parallel": {"executor": "sequential"},
        "references": {"ccsd": False},
        # no PT2, so no accurate stop at the first (whole-space) iteration: the loop runs past
        # its natural-orbital turn (after iteration 3), which the last assertions read
        "pt2": {"max_dimension": 0},
        "iterations": {"window": 3},
    }
    run = run_loop(RunSettings.from_config(validate_config(config)), "h6", tmp_path / "results", max_iterations=6)
    meta = json.loads((run.system.hamiltonian / "meta.json").read_text())

    mean_field = meta["mean_field"]
    rhf, uhf = mean_field["restricted"], mean_field["uhf"]
    assert rhf["kind"] == "RHF" and rhf["converged"] and meta["references"]["hf_active"] == rhf["energy"]
    assert uhf["stable"] and uhf["s2"] > 1.0  # spin symmetry broken
    assert uhf["energy"] < rhf["energy"] - 0.4  # 451 mHa measured
    assert uhf["energy"] > e_fci  # a single determinant stays above FCI
    assert "UHF" in mean_field["word"] and "mHa below RHF" in mean_field["word"]

    refs = meta["reference_determinants"]
    aufbau = refs[-1]
    assert aufbau["origin"] == "aufbau" and (aufbau["alpha"], aufbau["beta"]) == (0b111, 0b111)
    # First the lowest UHF's determinant: alternating spins (Neel), the heaviest in the FCI state
    # (weight 0.168), where the lowest <D|H|D> (ferromagnetic blocks) weighs 1e-4.
    assert {(refs[0]["alpha"], refs[0]["beta"]), (refs[1]["alpha"], refs[1]["beta"])} == {
        (0b010101, 0b101010),
        (0b101010, 0b010101),
    }
    weights = civec**2
    address = cistring.str2addr
    assert weights[address(ATOMS, 3, refs[0]["alpha"]), address(ATOMS, 3, refs[0]["beta"])] == pytest.approx(
        weights.max(), rel=1e-6
    )
    energies = [d["energy"] for d in refs[2:-1]]
    assert energies == sorted(energies) and energies[0] < refs[0]["energy"]  # the rest by <D|H|D>
    assert refs[0]["energy"] < aufbau["energy"] - 2.0  # singly occupied sites against three paired ones
    for det in refs:
        assert abs(det["energy"] - pyscf_diagonal(hcore, eri, ecore, det["alpha"], det["beta"])) < 1e-10
    assert {(d["beta"], d["alpha"]) for d in refs} == {(d["alpha"], d["beta"]) for d in refs}  # spin-flip partners

    with np.load(run.system.iteration(1).subspace) as first:
        held = set(zip(first["alpha"].tolist(), first["beta"].tolist(), strict=True))
    assert {(d["alpha"], d["beta"]) for d in refs} <= held
    assert abs(run.status.best_energy - e_fci) < 1e-8
    # The references are strings of the file's orbitals: the natural-orbital turn does not carry
    # them into the rotated integrals, whose subspace falls back to aufbau (largest occupations).
    natural = json.loads((run.system.natural_hamiltonian / "meta.json").read_text())
    assert "reference_determinants" not in natural and reference_strings(natural) == [(0b111, 0b111)]


def test_reference_strings_fall_back_to_aufbau_and_refuse_foreign_strings():
    meta = {"norb": 4, "nelec": [2, 2]}
    assert reference_strings(meta) == [(0b0011, 0b0011)]  # a folder from before the search
    meta["reference_determinants"] = [{"alpha": 0b0101, "beta": 0b1010}, {"alpha": 0b0011, "beta": 0b0011}]
    assert reference_strings(meta) == [(0b0101, 0b1010), (0b0011, 0b0011)]
    meta["reference_determinants"] = [{"alpha": 0b0111, "beta": 0b0011}]
    with pytest.raises(InputError, match="invalid reference_determinants"):
        reference_strings(meta)


def test_references_seed_the_subspace_and_the_first_teacher():
    refs = [(0b0101, 0b1010), (0b1010, 0b0101), (0b0011, 0b0011)]
    samples = Determinants(np.array([0b0110], np.uint64), np.array([0b0011], np.uint64), np.array([4], np.int64))
    grown = grow_subspace(None, samples, 4, (2, 2), refs)
    assert set(zip(grown.alpha.tolist(), grown.beta.tolist(), strict=True)) == {*refs, (0b0110, 0b0011)}
    teacher = hartree_fock_teacher(4, (2, 2), refs)  # the first with its spin-flip partner, symmetric
    assert teacher.strs_a.tolist() == teacher.strs_b.tolist() == [0b0101, 0b1010]
    np.testing.assert_allclose(teacher.amplitudes, [[0, 0.5**0.5], [0.5**0.5, 0]])
    assert hartree_fock_teacher(4, (2, 2)).strs_a.tolist() == [0b0011]
    open_shell = hartree_fock_teacher(4, (2, 1), [(0b0101, 0b1000)])
    assert (open_shell.strs_a.tolist(), open_shell.strs_b.tolist()) == ([0b0101], [0b1000])
    with pytest.raises(InputError, match="reference determinants do not match"):
        grow_subspace(None, samples, 4, (2, 2), [(0b0111, 0b0011)])


def test_the_record_says_so_when_no_mean_field_converges():
    from hinqs.chem.mean_field import ReferenceSearch, Solution

    failed = ReferenceSearch(Solution("RHF", "core Hamiltonian", None, False, False), [], [], 0.1)
    assert failed.best_uhf() is None
    assert failed.record()["word"] == (
        "no RHF converged (tried aufbau, core Hamiltonian, second-order); no UHF converged from any start"
    )
    unstable = Solution("UHF", "aufbau", -1.5, True, False, 0.9)
    found = ReferenceSearch(Solution("RHF", "aufbau", -1.0, True, True), [unstable], [], 0.1)
    assert (
        found.record()["word"]
        == "RHF -1.00000000; UHF -1.50000000 from aufbau (<S^2> 0.900, 500.000 mHa below RHF, unstable)"
    )
