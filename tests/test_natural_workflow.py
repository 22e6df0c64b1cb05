"""The loop continued in the natural orbitals of its own state (natural_orbitals.after), run as a
user would: the repository's Snakefile from the repository root with a config file of their own.

LiH/6-31G under a cap of 12 strings per spin (55 per spin in all), so which strings the
subspace holds depends on the orbitals they are written in. After iteration 1 the state's
density is diagonalised and iteration 2 works in its natural orbitals: the rotated
integrals must hold the same FCI energy (PySCF's FCI on them and on the molecule), the
energies stay variational, and the in-process driver (``hinqs verify``'s path) takes the same
turn at the same point, bit for bit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import LIH
from workflow_helpers import run_user_config

pytestmark = pytest.mark.slow

CONFIG = {
    "systems": [{"name": "lih", "geometry": LIH, "basis": "6-31g"}],
    "nqs": {"samples": 200, "epochs": 20, "device": "cpu"},
    "subspace": {"max_strings": 12, "expansion": {"strings": 4}},
    "parallel": {"executor": "sequential"},
    "iterations": {"max": 2, "tol": 1.0e-9, "window": 1},
    "natural_orbitals": {"after": 1},
    "references": {"ccsd": False},
}


@pytest.fixture(scope="module")
def natural_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("natural")
    results = run_user_config(tmp, "lih_natural.yaml", CONFIG)
    return tmp / "lih_natural.yaml", results


def _fci(directory) -> float:
    from pyscf import fci

    from hinqs.io.hamiltonian import load_hamiltonian

    ham = load_hamiltonian(directory, mmap=False)
    solver = fci.direct_spin1.FCI()
    solver.conv_tol = 1e-12
    return float(solver.kernel(ham.hcore, ham.eri, ham.norb, ham.nelec)[0]) + ham.ecore


def test_the_natural_hamiltonian_is_the_same_molecule_in_the_state_s_orbitals(natural_run):
    _, results = natural_run
    system = results / "lih"
    meta = json.loads((system / "hamiltonian_natural" / "meta.json").read_text())
    before = json.loads((system / "hamiltonian" / "meta.json").read_text())
    record = meta["natural_orbitals"]
    assert record["iteration"] == 1
    occupations = np.asarray(record["occupations"])
    assert occupations.sum() == pytest.approx(sum(meta["nelec"]), abs=1e-10)
    rotation = np.asarray(record["rotation"])
    assert np.allclose(rotation.T @ rotation, np.eye(len(occupations)), atol=1e-12)
    assert not np.allclose(rotation, np.eye(len(occupations)), atol=1e-3)  # the orbitals did move,
    assert np.all(np.diag(rotation) > 0.5)  # each into the place of the one it resembles
    assert meta["ecore"] == before["ecore"] and meta["references"] == before["references"]
    assert _fci(system / "hamiltonian_natural") == pytest.approx(_fci(system / "hamiltonian"), abs=1e-9)


def test_the_iterations_after_the_turn_work_in_it_and_stay_variational(natural_run):
    _, results = natural_run
    summary = json.loads((results / "lih" / "summary.json").read_text())
    fci = summary["references"]["fci"]
    energies = [r["energy"] for r in summary["per_iteration"]]
    assert len(energies) == 2 and all(e > fci - 1e-9 for e in energies)
    natural = json.loads((results / "lih" / "hamiltonian_natural" / "meta.json").read_text())["sha256"]
    prepared = json.loads((results / "lih" / "hamiltonian" / "meta.json").read_text())["sha256"]
    used = []
    for k in (1, 2):  # result.json names the integrals each diagonalisation was solved with
        result = json.loads((results / "lih" / f"iter_{k:03d}" / "sqd" / "result.json").read_text())
        used.append(result["hamiltonian"]["sha256"])
    assert used == [prepared, natural]
    rule_log = (results / "lih" / "logs" / "natural_orbitals.log").read_text()
    assert "from iteration 1's state" in rule_log


def test_the_driver_turns_at_the_same_point_bit_for_bit(natural_run, tmp_path):
    from hinqs.config import load_config
    from hinqs.loop.driver import run_loop
    from hinqs.loop.settings import RunSettings

    config_file, results = natural_run
    settings = RunSettings.from_config(load_config(config_file))
    run = run_loop(settings, "lih", tmp_path / "driver")
    workflow = json.loads((results / "lih" / "summary.json").read_text())["per_iteration"]
    driver = []
    for k in range(1, run.iterations + 1):
        driver.append(json.loads((tmp_path / "driver" / "lih" / f"iter_{k:03d}" / "sqd" / "result.json").read_text()))
    assert [r["energy"] for r in workflow] == [d["energy"] for d in driver]
    natural = tmp_path / "driver" / "lih" / "hamiltonian_natural" / "meta.json"
    assert (
        json.loads(natural.read_text())["sha256"]
        == json.loads((results / "lih" / "hamiltonian_natural" / "meta.json").read_text())["sha256"]
    )


def test_the_summary_says_which_orbitals_the_answer_was_found_in(natural_run):
    _, results = natural_run
    summary = json.loads((results / "lih" / "summary.json").read_text())
    assert summary["orbitals"] == {"prepared": "mp2", "natural_after": 1}


def test_a_state_that_spans_every_string_keeps_the_orbitals(tmp_path):
    """FCI of a small space is the same in any orbitals: the turn writes prepare's integrals,
    bit for bit, so the loop does not spend an iteration settling again."""
    from sqd_helpers import build_hamiltonian

    from hinqs.chem.fci import exact_ground_state
    from hinqs.io.files import GroundState, write_state
    from hinqs.io.hamiltonian import hamiltonian_id, load_hamiltonian
    from hinqs.steps.orbitals import natural_hamiltonian

    ham_dir = build_hamiltonian("lih", tmp_path / "lih")
    ham = load_hamiltonian(ham_dir)
    fci = exact_ground_state(np.asarray(ham.hcore), np.asarray(ham.eri), ham.nelec, ham.ecore)
    state = GroundState(fci.strings_a.astype(np.uint64), fci.strings_b.astype(np.uint64), fci.civec)
    write_state(tmp_path / "state.npz", state, fci.energy, 0)
    record = natural_hamiltonian(ham_dir, tmp_path / "state.npz", tmp_path / "natural", iteration=3)
    assert record["rotated"] is False
    assert hamiltonian_id(load_hamiltonian(tmp_path / "natural").meta) == hamiltonian_id(ham.meta)
