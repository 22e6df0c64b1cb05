"""Reference energies past FCI: the selected-CI series, CCSD(T), and which reference is best."""

from __future__ import annotations

import itertools

from sqd_helpers import build_hamiltonian

from hinqs.chem.references import best_reference, compute_references
from hinqs.config import schema_defaults
from hinqs.io.hamiltonian import load_hamiltonian


def test_sci_series_runs_when_fci_is_out_of_reach(tmp_path):
    ham = load_hamiltonian(build_hamiltonian("lih", tmp_path / "ham"))
    args = (ham.hcore, ham.eri, ham.nelec, ham.ecore)
    defaults = {**schema_defaults()["references"], "ccsd": True}
    full = compute_references(*args, **{**defaults, "fci_max_determinants": 10**6})
    assert full["sci"] is None and full["fci"] is not None  # not needed when FCI is there
    refs = compute_references(*args, **{**defaults, "fci_max_determinants": 0, "sci_cutoffs": [1e-2, 1e-3, 1e-5]})
    assert refs["fci"] is None and refs["ccsd_t"] is not None
    points = refs["sci"]["points"]
    assert [p["cutoff"] for p in points] == [1e-2, 1e-3, 1e-5]
    energies = [p["energy"] for p in points]
    assert all(a >= b - 1e-10 for a, b in itertools.pairwise(energies))  # variational, tighter is lower
    assert all(p["dimension"] == p["strings"][0] * p["strings"][1] and p["seconds"] >= 0 for p in points)
    assert abs(energies[-1] - full["fci"]) < 1e-6  # LiH/STO-3G: 225 determinants, a tight cutoff is FCI
    assert refs["sci"]["extrapolated"] is not None
    assert refs["sci"]["last_step_mha"] == (energies[-2] - energies[-1]) * 1000


def test_best_reference_prefers_fci_then_sci_then_ccsd_t():
    sci = {"energy": -2.0, "cutoff": 5e-4, "last_step_mha": 0.5}
    loose = {**sci, "last_step_mha": 30.0}
    assert best_reference({"references": {"fci": -3.0, "sci": sci, "ccsd_t": -1.0}}) == ("FCI", -3.0)
    assert best_reference({"references": {"fci": None, "sci": sci, "ccsd_t": -1.0}}) == ("SCI(cutoff=0.0005)", -2.0)
    # A selected CI still moving by tens of mHa per cutoff step is not trusted over CCSD(T).
    assert best_reference({"references": {"fci": None, "sci": loose, "ccsd_t": -1.0}}) == ("CCSD(T)", -1.0)
    assert best_reference({"references": {"fci": None, "sci": loose}}) == ("SCI(cutoff=0.0005)", -2.0)
    assert best_reference({"references": {"fci": None, "sci": None, "ccsd_t": -1.0}}) == ("CCSD(T)", -1.0)
    assert best_reference({"references": {}}) == (None, None)
    # A series whose first cutoff ran out of time leaves its last finished cycle, named as such.
    unfinished = {"energy": None, "partial": {"cutoff": 2e-3, "energy": -1.5}}
    assert best_reference({"references": {"sci": unfinished}}) == ("SCI(cutoff=0.002, unfinished)", -1.5)
    assert best_reference({"references": {"sci": unfinished, "ccsd_t": -1.0}}) == ("CCSD(T)", -1.0)


def test_a_cutoff_that_outlasts_the_budget_is_abandoned(tmp_path):
    """N2/6-31G: cutoff 1e-2 takes about a second, 1e-4 minutes; with 5 s the series keeps the
    first point, abandons the second when the seconds are spent and returns on time (within 15 s:
    the timer fires between PySCF's C calls, and a loaded 2-core machine measured 7.05 s)."""
    import signal
    import time

    from hinqs.chem.references import sci_series

    ham = load_hamiltonian(build_hamiltonian("n2", tmp_path / "ham"))
    handler = signal.getsignal(signal.SIGALRM)
    start = time.perf_counter()
    series = sci_series(ham.hcore, ham.eri, ham.nelec, ham.ecore, [1e-2, 1e-4], 5.0)
    assert time.perf_counter() - start < 15.0
    done = [p["cutoff"] for p in series["points"]]
    assert (done, series["abandoned"]) in (([1e-2], 1e-4), ([], 1e-2))  # the second only on a very slow machine
    # The abandoned cutoff's last finished selection cycle is kept (its first takes well under a
    # second: the space of HF's doubles, or the finished cutoff's space it starts from).
    partial = series["partial"]
    assert partial["cutoff"] == series["abandoned"] and partial["cycle"] >= 0 and partial["dimension"] > 0
    assert 0 < partial["seconds"] <= series["seconds"]
    if done:
        first = series["points"][0]
        assert partial["strings"][0] >= first["strings"][0] and partial["energy"] <= first["energy"] + 1e-6
    assert series["seconds"] < 15.0 and signal.getsignal(signal.SIGALRM) == handler


def test_prepare_with_a_user_reference_spends_no_selected_ci_time(tmp_path, config_file, monkeypatch):
    """An FCIDUMP past FCI's reach (fci_max_determinants: 0) whose system gives `reference:`: the
    selected-CI series is never entered and meta.json says why; without the reference it would run."""
    import json

    import numpy as np
    import pytest
    from pyscf.tools import fcidump

    from hinqs.chem import references
    from hinqs.cli import main

    ham = load_hamiltonian(build_hamiltonian("lih", tmp_path / "ham"))
    dump = tmp_path / "lih.fcidump"
    fcidump.from_integrals(str(dump), np.asarray(ham.hcore), np.asarray(ham.eri), ham.norb, ham.nelec, nuc=ham.ecore)

    def never(*_args, **_kwargs):
        raise AssertionError("the selected-CI series was entered")

    monkeypatch.setattr(references, "sci_series", never)
    source = "published DMRG, for the test"
    system = {"name": "lih", "fcidump": str(dump), "reference": {"energy": -7.88, "source": source}}
    cfg = config_file(system, references={"fci_max_determinants": 0, "ccsd": False})
    assert main(["prepare", "--config", str(cfg), "--out", str(tmp_path / "out")]) == 0
    refs = json.loads((tmp_path / "out" / "meta.json").read_text())["references"]
    assert refs["sci"] is None and source in refs["sci_skipped"]
    assert "sci" not in refs["seconds"] and refs["fci"] is None
    args = (ham.hcore, ham.eri, ham.nelec, ham.ecore)
    defaults = {**schema_defaults()["references"], "fci_max_determinants": 0, "ccsd": False}
    with pytest.raises(AssertionError, match="entered"):  # the control: no user reference, the series runs
        compute_references(*args, **defaults)
