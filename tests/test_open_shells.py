"""UHF natural orbitals and the spin couplings of their open shells (hinqs.chem.open_shells).

Where the UHF breaks the spin symmetry (a stretched N2 here: its triple bond broken, UHF far
below RHF with <S^2> near 3), prepare rotates the active integrals into the UHF's natural
orbitals and puts every spin coupling of the fractionally occupied ones into the references;
the loop holds the singlet from the first Davidson cycle and reaches PySCF's FCI. Near
equilibrium nothing changes: MP2's natural orbitals, as before.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pyscf import fci

from hinqs.chem.open_shells import coupling_determinants, open_shells
from hinqs.config import complete_system, validate_config

STRETCHED = {"name": "n2_stretched", "geometry": "N 0 0 0; N 0 0 2.2", "basis": "sto-3g", "frozen_core": 2}
NEAR_EQUILIBRIUM = {**STRETCHED, "name": "n2", "geometry": "N 0 0 0; N 0 0 1.1"}


def _bits(string: int) -> set[int]:
    return {p for p in range(64) if string >> p & 1}


def test_the_couplings_span_every_coupling_of_the_open_shells():
    occupations = np.array([2.0, 1.999, 1.3, 1.1, 0.9, 0.7, 0.01, 0.0])
    closed, open_set = open_shells(occupations)
    assert closed.tolist() == [0, 1] and open_set.tolist() == [2, 3, 4, 5]
    pairs, word = coupling_determinants(occupations, (4, 4))
    alpha, beta = {a for a, _ in pairs}, {b for _, b in pairs}
    assert len(alpha) == len(beta) == math.comb(4, 2) and "6 x 6 couplings" in word
    for a, b in pairs:  # closed shells doubly occupied, each open shell once: a spin coupling
        assert _bits(a) & _bits(b) == {0, 1} and _bits(a) | _bits(b) == {0, 1, 2, 3, 4, 5}
    # a doublet: 3 alpha and 2 beta electrons in the open shells, every string of both spins occurs
    pairs, _ = coupling_determinants(occupations, (5, 4))
    assert len({a for a, _ in pairs}) == math.comb(4, 3) and len({b for _, b in pairs}) == math.comb(4, 2)
    # nothing to couple, or more couplings than the limit: none, with the reason
    assert coupling_determinants(np.array([2.0, 2.0, 0.0, 0.0]), (2, 2))[0] == []
    too_many = coupling_determinants(occupations, (4, 4), limit=5)
    assert too_many[0] == [] and "above 5" in too_many[1]


def test_auto_takes_the_uhf_natural_orbitals_where_the_spin_symmetry_breaks(tmp_path):
    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.chem.prepare import prepare_system

    references = validate_config({"systems": [STRETCHED], "references": {"ccsd": False}})["references"]
    folder = prepare_system(complete_system(STRETCHED), references, tmp_path / "ham")
    meta = json.loads((folder / "meta.json").read_text())
    record = meta["open_shells"]
    assert record["kind"] == "uno" and record["hold_spin"] and "mHa below RHF" in record["why"]
    assert meta["active_space"]["orbitals"] == "uno"
    n_open = len(record["open_shells"])
    assert n_open >= 4 and f"{n_open} open shells" in record["couplings"]
    # the rotation changes the basis, not the Hamiltonian: PySCF's FCI on the canonical integrals
    canonical, _ = integrals_from_geometry(complete_system({**STRETCHED, "orbitals": "hf"}))
    e_fci = fci.direct_spin1.kernel(canonical.hcore, canonical.eri, canonical.norb, canonical.nelec,
                                    ecore=canonical.ecore, conv_tol=1e-12)[0]  # fmt: skip
    assert abs(meta["references"]["fci"] - e_fci) < 1e-7  # both FCI solves converged to 1e-8 or better
    # every coupling is a reference: the first subspace holds them all, the lowest leads
    refs = meta["reference_determinants"]
    couplings = [d for d in refs if d["origin"].startswith("open-shell coupling")]
    n_closed = sum(1 for n in record["occupations"] if n >= 1.98)
    assert len({d["alpha"] for d in couplings}) == math.comb(n_open, 5 - n_closed)
    assert refs[0]["origin"] == "open-shell coupling" and refs[-1]["origin"] == "aufbau"
    assert refs[0]["energy"] == pytest.approx(min(d["energy"] for d in couplings), abs=1e-9)  # ties: last bits


def test_near_equilibrium_auto_is_mp2(tmp_path):
    from hinqs.chem.prepare import prepare_system

    references = validate_config({"systems": [NEAR_EQUILIBRIUM], "references": {"ccsd": False}})["references"]
    auto = prepare_system(complete_system(NEAR_EQUILIBRIUM), references, tmp_path / "auto")
    mp2 = prepare_system(complete_system({**NEAR_EQUILIBRIUM, "orbitals": "mp2"}), references, tmp_path / "mp2")
    meta = json.loads((auto / "meta.json").read_text())
    assert meta["open_shells"] is None and meta["active_space"]["orbitals"] == "mp2"
    # (two SCFs of N2 may turn its degenerate pi pair differently, so the arrays are compared by
    # what does not depend on that turn)
    other = json.loads((mp2 / "meta.json").read_text())
    assert np.allclose(meta["active_space"]["natural_occupations"], other["active_space"]["natural_occupations"])
    assert abs(meta["references"]["fci"] - other["references"]["fci"]) < 1e-9


def test_a_stretched_bond_holds_the_singlet_and_reaches_fci(tmp_path):
    from hinqs.loop.driver import run_loop
    from hinqs.loop.settings import RunSettings

    config = {
        "systems": [STRETCHED],
        "nqs": {"samples": 10, "epochs": 20, "device": "cpu"},
        "parallel": {"executor": "sequential"},
        "references": {"ccsd": False},
        "subspace": {"max_strings": 24},  # of 56 per spin, fixed: the 20 couplings and a few more
    }
    settings = RunSettings.from_config(validate_config(config))
    run = run_loop(settings, STRETCHED["name"], tmp_path / "r", max_iterations=8)
    meta = json.loads((run.system.hamiltonian / "meta.json").read_text())
    first, last = (
        json.loads((run.system.iteration(k).sqd / "result.json").read_text()) for k in (1, run.status.iteration)
    )
    assert first["settings"]["solver"]["spin_sq"] == 0.0  # held from the first cycle
    assert first["batches"][0]["product_shape"][0] >= 20  # every coupling of the six open shells
    assert all(abs(batch["spin_sq"]) < 1e-3 for batch in last["batches"] if batch["status"] == "ok")
    assert abs(run.status.best_energy - meta["references"]["fci"]) < 1.6e-3
