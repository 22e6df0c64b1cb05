"""The PT2 step over MPI ranks (``parallel.executor: distributed``): the same pt2.json, bit for bit.

Real chemistry: a singlet N2/6-31G state (16 orbitals, (5, 5), 40 strings per spin, solved
by the ``direct`` solver with the singlet's mirror, so C = C^T and the complete sum pairs
its determinants) and a triplet CH2/6-31G state (12 orbitals, (4, 2)). ``hinqs pt2`` runs
under ``mpiexec -n 2`` and ``-n 3`` exactly as the workflow's rule starts it, with a config
naming the distributed executor; its pt2.json must hold the one-process step's numbers, to
the last bit, for the complete sum and for the semistochastic one (the same draws). A rank
whose rows raise must fail every rank with its reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_config
from sqd_helpers import mpiexec, random_strings, solver_settings

from hinqs.io.files import GroundState, write_state
from hinqs.io.hamiltonian import load_hamiltonian

pytestmark = [pytest.mark.mpi, pytest.mark.usefixtures("one_solver_thread")]

SYSTEMS = {
    "n2": {"geometry": "N 0 0 0; N 0 0 1.0977", "basis": "6-31g", "frozen_core": 2, "orbitals": "hf"},
    "ch2": {"geometry": "C 0 0 0; H 0 0.9929 0.6093; H 0 -0.9929 0.6093", "basis": "6-31g", "spin": 2,
            "frozen_core": 1, "orbitals": "hf"},
}  # fmt: skip
NUMBERS = ("e_var", "e_pt2", "e_pt2_error", "e_pt2_ci95", "complete", "rows", "rows_computed", "draws",
           "external_determinants", "intruders", "connected_strings", "product_shape")  # fmt: skip


def _launcher() -> str:
    launcher = mpiexec()
    if launcher is None:
        pytest.skip("mpi4py or mpiexec is not installed (pip install hinqs[mpi])")
    return launcher


def _state(root: Path, name: str, n_strings: int) -> tuple[Path, Path]:
    """A Hamiltonian folder and a solved state.npz as the diagonalize step writes them."""
    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.config import complete_system
    from hinqs.io.hamiltonian import write_hamiltonian
    from hinqs.sqd.solvers import solve_direct

    ints, _ = integrals_from_geometry(complete_system({"name": name, **SYSTEMS[name]}))
    ham_dir = write_hamiltonian(root / "hamiltonian", ints.hcore, ints.eri, ints.nelec, ints.ecore, {"system": name})
    ham = load_hamiltonian(ham_dir)
    rng = np.random.default_rng(5)
    strs_a = random_strings(ham.norb, ham.nelec[0], n_strings, rng)
    strs_b = strs_a if ham.nelec[0] == ham.nelec[1] else random_strings(ham.norb, ham.nelec[1], n_strings, rng)
    out = solve_direct(strs_a, strs_b, ham.hcore, ham.eri, tuple(ham.nelec), solver_settings(solver="direct"))
    state = GroundState(strs_a, strs_b, out.state.amplitudes)
    write_state(root / "state.npz", state, out.energy + ham.ecore, 0)
    return ham_dir, root / "state.npz"


@pytest.fixture(scope="module")
def states(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("pt2_ranks")
    return {"n2": _state(root / "n2", "n2", 40), "ch2": _state(root / "ch2", "ch2", 30)}


def _pt2(tmp: Path, name: str, files: tuple[Path, Path], max_dimension: int, ranks: int) -> dict:
    """``hinqs pt2`` as the rule runs it: one process, or ``ranks`` ranks under the launcher."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = write_config(tmp / f"config_{ranks}.yaml", {
        "seed": 17,
        "systems": [{"name": name, **SYSTEMS[name]}],
        "parallel": {"executor": "distributed", "workers": max(ranks, 1), "threads_per_worker": 1},
        "pt2": {"max_dimension": max_dimension, "relative_error": 0.02},
    })  # fmt: skip
    out = tmp / f"pt2_{ranks}.json"
    launch = [_launcher(), "-n", str(ranks), sys.executable, "-m", "mpi4py"] if ranks > 1 else [sys.executable]
    command = [*launch, "-m", "hinqs", "pt2", "--config", str(config), "--hamiltonian", str(files[0]),
               "--state", str(files[1]), "--iteration", "2", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("hinqs pt2: E_var") == 1  # rank 0 alone reports
    record = json.loads(out.read_text())
    assert record["ranks"] == ranks
    return record


@pytest.mark.parametrize("ranks", [2, 3])
def test_complete_and_sampled_pt2_over_ranks_are_one_process_s_bits(states, tmp_path, ranks):
    """The singlet's complete sum (each determinant pair once) and its semistochastic estimate
    (the same strata, draws and rows) on 2 and 3 ranks: every number of one process's record."""
    for max_dimension in (10**8, 10):
        one = _pt2(tmp_path / f"one_{max_dimension}", "n2", states["n2"], max_dimension, 1)
        spread = _pt2(tmp_path / f"spread_{max_dimension}", "n2", states["n2"], max_dimension, ranks)
        assert one["complete"] == (max_dimension > 10) and one["e_pt2"] < -1e-3
        assert {k: spread[k] for k in NUMBERS} == {k: one[k] for k in NUMBERS}


def test_open_shell_complete_pt2_on_two_ranks_is_one_process_s_bits(states, tmp_path):
    one = _pt2(tmp_path / "one", "ch2", states["ch2"], 10**8, 1)
    spread = _pt2(tmp_path / "spread", "ch2", states["ch2"], 10**8, 2)
    assert one["complete"] and one["e_pt2"] < -1e-3
    assert {k: spread[k] for k in NUMBERS} == {k: one[k] for k in NUMBERS}


FAILING_RANK = """
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI
from hinqs.subspace.pt2_ranks import RowDeal, RowsFailed

comm = MPI.COMM_WORLD
def rows(mine):
    if comm.Get_rank() == 1:
        raise MemoryError("no room for the row")
    return (mine * 2.0,)
try:
    RowDeal(comm).compute(np.arange(7), rows)
except RowsFailed as exc:
    Path(sys.argv[1], f"rank{comm.Get_rank()}.txt").write_text(str(exc))
"""


def test_a_rank_whose_rows_raise_fails_every_rank_with_its_reason(tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(FAILING_RANK)
    proc = subprocess.run([_launcher(), "-n", "3", sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for rank in range(3):  # each rank caught it, with rank 1's reason
        assert (tmp_path / f"rank{rank}.txt").read_text() == "rank 1: MemoryError: no room for the row"
