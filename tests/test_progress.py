"""A long Davidson solve prints a line per cycle with its residual, energy and time left."""

from __future__ import annotations

import numpy as np
import pytest
from sqd_helpers import build_hamiltonian, random_strings, solver_settings

from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.sqd import solvers
from hinqs.sqd.progress import remaining_cycles

pytestmark = pytest.mark.usefixtures("one_solver_thread")


def test_remaining_cycles_follow_the_geometric_rate():
    assert remaining_cycles([1.0, 0.1], 1e-4, 50) == 3  # 1e-1 -> 1e-4 at a decade per cycle
    assert remaining_cycles([1.0, 0.1], 1e-4, 2) == 2  # capped by max_cycle
    assert remaining_cycles([1.0], 1e-4, 50) is None  # no rate yet
    assert remaining_cycles([1.0, 2.0], 1e-4, 50) is None  # not falling
    assert remaining_cycles([1e-5], 1e-4, 50) == 0


def test_a_long_solve_reports_each_cycle_and_its_time_left(tmp_path, monkeypatch, capfd):
    """N2 with a 60 x 60 subspace, the progress threshold lowered to it: every cycle gets a line,
    the energy of the last line is the solve's electronic energy."""
    ham = load_hamiltonian(build_hamiltonian("n2", tmp_path / "n2"))
    strings = random_strings(ham.norb, ham.nelec[0], 60, np.random.default_rng(5))
    monkeypatch.setattr(solvers, "PROGRESS_DIMENSION", len(strings) ** 2)
    out = solvers.solve_lean(strings, strings, ham.hcore, ham.eri, ham.nelec, solver_settings(solver="lean"))
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("davidson cycle")]
    assert len(lines) >= 3
    assert [int(line.split()[2].rstrip(":")) for line in lines] == list(range(len(lines)))  # PySCF's cycle numbers
    assert all("s/cycle" in line and ("left" in line or "unknown" in line) for line in lines)
    assert "more cycle(s)" in lines[-1]
    last = float(lines[-1].split("electronic energy ")[1].split()[0])
    assert abs(last - out.energy) < 1e-5  # the cycle before convergence (the solver works without ecore)
