"""hinqs prepare: integrals written to disk reproduce PySCF's own energies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import H2O, LIH, N2, run_hinqs
from pyscf import gto, mcscf, scf
from pyscf.tools import fcidump

from hinqs.chem.fci import fci_energy
from hinqs.cli import main
from hinqs.io.hamiltonian import load_hamiltonian

CASES = {
    "h2o_sto3g": ({"geometry": H2O, "basis": "sto-3g"}, 0),
    "lih_631g": ({"geometry": LIH, "basis": "6-31g"}, 0),
    "n2_sto3g_fc2": ({"geometry": N2, "basis": "sto-3g", "frozen_core": 2}, 2),
}


def pyscf_reference(system: dict, ncore: int) -> float:
    """PySCF's own CASCI energy for the same molecule and frozen core, computed independently."""
    mol = gto.M(atom=system["geometry"], basis=system["basis"], spin=system.get("spin", 0), verbose=0)
    mf = (scf.RHF(mol) if mol.spin == 0 else scf.ROHF(mol)).run(conv_tol=1e-11)
    ncas = mol.nao_nr() - ncore
    nelecas = (mol.nelec[0] - ncore, mol.nelec[1] - ncore)
    casci = mcscf.CASCI(mf, ncas, nelecas)
    casci.fcisolver.conv_tol = 1e-12
    casci.verbose = 0
    return float(casci.kernel()[0])


def energy_from_files(directory: Path) -> float:
    """FCI energy computed from nothing but the written Hamiltonian folder."""
    ham = load_hamiltonian(directory, verify=True)
    return fci_energy(ham.hcore, ham.eri, ham.nelec, ham.ecore)


@pytest.mark.parametrize("case", list(CASES))
def test_written_integrals_reproduce_pyscf_casci(case, tmp_path, config_file):
    system, ncore = CASES[case]
    cfg = config_file({"name": case, **system})
    out = tmp_path / "ham"
    assert main(["prepare", "--config", str(cfg), "--out", str(out)]) == 0

    meta = json.loads((out / "meta.json").read_text())
    expected = pyscf_reference(system, ncore)
    assert abs(energy_from_files(out) - expected) < 1e-8
    assert abs(meta["references"]["fci"] - expected) < 1e-8
    assert meta["active_space"]["ncore"] == ncore
    eri = np.load(out / "eri.npy", mmap_mode="r")
    assert isinstance(eri, np.memmap) and eri.shape == (meta["norb"],) * 4
    # Chemical sanity of the stored references: variational ordering.
    refs = meta["references"]
    assert refs["fci"] < meta["e_hf"]
    assert abs(refs["ccsd_t"] - refs["fci"]) < 5e-3


def test_open_shell_uses_rohf_and_matches_casci(tmp_path, config_file):
    system = {"geometry": "C 0 0 0; H 0 0.99 0.55; H 0 -0.99 0.55", "basis": "sto-3g", "spin": 2, "frozen_core": 1}
    cfg = config_file({"name": "ch2_triplet", **system})
    out = tmp_path / "ham"
    assert main(["prepare", "--config", str(cfg), "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["active_space"]["scf"] == "ROHF"
    assert meta["nelec"] == [4, 2]
    assert abs(energy_from_files(out) - pyscf_reference(system, 1)) < 1e-8


def test_active_space_cas(tmp_path, config_file):
    cfg = config_file({"name": "h2o_cas", "geometry": H2O, "basis": "6-31g", "active_space": [6, 6]})
    out = tmp_path / "ham"
    assert main(["prepare", "--config", str(cfg), "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["norb"] == 6 and meta["nelec"] == [3, 3] and meta["active_space"]["ncore"] == 2
    mol = gto.M(atom=H2O, basis="6-31g", verbose=0)
    mf = scf.RHF(mol).run(conv_tol=1e-11)
    casci = mcscf.CASCI(mf, 6, 6)
    casci.verbose = 0
    assert abs(energy_from_files(out) - casci.kernel()[0]) < 1e-8


def test_fcidump_gives_same_arrays_as_geometry(tmp_path, config_file):
    system = {"name": "n2", "geometry": N2, "basis": "sto-3g", "frozen_core": 2}
    geo = tmp_path / "geo"
    assert main(["prepare", "--config", str(config_file(system)), "--out", str(geo)]) == 0
    ham = load_hamiltonian(geo)
    dump = tmp_path / "n2.fcidump"
    fcidump.from_integrals(
        str(dump), np.asarray(ham.hcore), np.asarray(ham.eri), ham.norb, ham.nelec, nuc=ham.ecore, tol=0.0
    )
    (tmp_path / "dump").mkdir()
    cfg2 = config_file({"name": "n2_dump", "fcidump": str(dump)})
    out = tmp_path / "from_dump"
    assert main(["prepare", "--config", str(cfg2), "--out", str(out)]) == 0
    other = load_hamiltonian(out)
    assert other.nelec == ham.nelec and other.norb == ham.norb
    np.testing.assert_allclose(other.hcore, ham.hcore, rtol=0, atol=1e-14)
    np.testing.assert_allclose(other.eri, ham.eri, rtol=0, atol=1e-14)
    assert abs(other.ecore - ham.ecore) < 1e-12
    refs_geo = json.loads((geo / "meta.json").read_text())["references"]
    refs_dump = json.loads((out / "meta.json").read_text())["references"]
    assert abs(refs_geo["fci"] - refs_dump["fci"]) < 1e-10
    assert abs(refs_geo["ccsd"] - refs_dump["ccsd"]) < 1e-8


def test_prepare_command_line_in_a_fresh_process(tmp_path, config_file):
    cfg = config_file({"name": "h2", "geometry": "H 0 0 0; H 0 0 0.74"})
    out = tmp_path / "nested" / "ham"
    proc = run_hinqs("prepare", "--config", str(cfg), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert abs(meta["references"]["fci"] - (-1.137283834)) < 1e-6
    assert sorted(p.name for p in out.parent.iterdir()) == ["ham"]  # no temporary leftovers


@pytest.mark.parametrize(
    "system",
    [
        {"name": "lih", "geometry": "Li 0 0 0; H 0 0 1.5949", "basis": "6-31g", "frozen_core": 1},
        {"name": "ch2", "geometry": "C 0 0 0.1031; H 0 0.9989 -0.3093; H 0 -0.9989 -0.3093", "basis": "sto-3g",
         "spin": 2, "frozen_core": 1},
    ],
    ids=["closed", "triplet"],
)  # fmt: skip
def test_natural_orbitals_leave_fci_unchanged_and_compact_the_state(system):
    """MP2 and CCSD natural orbitals rotate only the active orbitals: same FCI energy (PySCF FCI
    on each set of integrals), occupations sorted from ~2 down, recorded in the info."""
    import numpy as np
    from pyscf import fci

    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.config import complete_system

    energies = {}
    for kind in ("hf", "mp2", "ccsd"):
        ints, _ = integrals_from_geometry(complete_system({**system, "orbitals": kind}))
        norb = ints.hcore.shape[0]
        energies[kind], _ = fci.direct_spin1.kernel(
            ints.hcore, ints.eri, norb, ints.nelec, ecore=ints.ecore, conv_tol=1e-12
        )
        occupations = ints.info["natural_occupations"]
        assert ints.info["orbitals"] == kind
        if kind == "hf":
            assert occupations is None
        else:
            assert np.all(np.diff(occupations) <= 1e-12) and 1.9 < occupations[0] <= 2.0 + 1e-9
            assert abs(sum(occupations) - sum(ints.nelec)) < 1e-8
    assert abs(energies["mp2"] - energies["hf"]) < 1e-9
    assert abs(energies["ccsd"] - energies["hf"]) < 1e-9


def test_the_scf_records_its_internal_stability():
    """C2/6-31G at 1.2425 A (the accuracy table's geometry) has an internally unstable RHF, LiH
    a stable one; the record says which (the orbitals stay the converged SCF's)."""
    from pyscf import gto, scf

    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.config import complete_system

    c2 = {"name": "c2", "geometry": "C 0 0 0; C 0 0 1.2425", "basis": "6-31g", "frozen_core": 2, "orbitals": "hf"}
    lih = {"name": "lih", "geometry": LIH, "basis": "6-31g", "orbitals": "hf"}
    for system, stable in ((c2, False), (lih, True)):
        ints, _ = integrals_from_geometry(complete_system(system))
        assert ints.info["scf_stable"] is stable
        reference = scf.RHF(gto.M(atom=system["geometry"], basis="6-31g", verbose=0)).run(conv_tol=1e-10)
        assert abs(ints.info["e_hf"] - reference.e_tot) < 1e-8  # not rotated away from the SCF's solution
