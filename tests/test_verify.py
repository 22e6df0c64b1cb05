"""hinqs verify: the parallel path equals the sequential one, and a real difference is caught."""

from __future__ import annotations

import json

import pytest
from conftest import run_hinqs, write_config

pytestmark = pytest.mark.slow

OPEN_SHELL = {
    "seed": 5,
    "systems": [
        {"name": "ch2_triplet", "geometry": "C 0 0 0; H 0 0.99 0.55; H 0 -0.99 0.55", "spin": 2, "frozen_core": 1}
    ],
    "nqs": {"samples": 3000, "epochs": 30},
    "sqd": {"n_batches": 3, "samples_per_batch": 40},
    "parallel": {"executor": "process", "workers": 2, "threads_per_worker": 1},
    "iterations": {"max": 3, "tol": 1.0e-8, "window": 1},
}


# N2/STO-3G with both 1s frozen (3,136 determinants, two batches of 400): large enough for
# two batches, a teacher and training to differ if anything in the parallel path did; the
# default config (H2O/6-31G, 3 minutes a run) would take twice that here.
N2 = {
    "seed": 1234,
    "systems": [{"name": "n2_sto3g", "geometry": "N 0 0 0; N 0 0 1.0977", "basis": "sto-3g", "frozen_core": 2}],
    "nqs": {"d_model": 32, "n_layers": 2, "n_heads": 4, "samples": 20000, "epochs": 100},
    "sqd": {"n_batches": 2, "samples_per_batch": 400},
    "parallel": {"executor": "process", "workers": 2, "threads_per_worker": 1},
    "iterations": {"max": 8, "tol": 1.0e-6, "window": 3},
    # Without PT2 the loop cannot stop accurate at iteration 1 (its batches span the whole
    # space there, E_PT2 = 0): it runs until the energy settles, training in between.
    "pt2": {"max_dimension": 0},
}


def test_verify_passes_on_n2(tmp_path):
    cfg = write_config(tmp_path / "n2.yaml", N2)
    proc = run_hinqs("verify", "--config", str(cfg), "--out", str(tmp_path / "v"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert report["identical"] and report["paths"]["exact"]
    assert report["paths"]["parallel"]["executor"] == "process"
    assert set(report["largest_deviation"]) >= {
        "sampled determinants",
        "batch compositions",
        "batch energies",
        "merged energy",
        "teacher state",
        "model weights",
    }
    assert all(value == 0.0 for value in report["largest_deviation"].values())
    assert report["iterations"]["sequential"] == report["iterations"]["parallel"] >= 2
    assert "VERIFIED" in (tmp_path / "v" / "report.txt").read_text()
    # The parallel path really ran in worker processes.
    result = json.loads((tmp_path / "v/parallel/n2_sto3g/iter_001/sqd/result.json").read_text())
    assert result["executor"]["executor"] == "process" and result["executor"]["pool_starts"] >= 1


def test_verify_passes_on_an_open_shell_system(tmp_path):
    cfg = write_config(tmp_path / "open.yaml", OPEN_SHELL)
    proc = run_hinqs("verify", "--config", str(cfg), "--out", str(tmp_path / "v"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert report["identical"]
    meta = json.loads((tmp_path / "v/hamiltonian/ch2_triplet/meta.json").read_text())
    assert meta["nelec"] == [4, 2]


def test_verify_names_the_first_divergence(tmp_path):
    cfg = write_config(tmp_path / "open.yaml", OPEN_SHELL)
    proc = run_hinqs(
        "verify", "--config", str(cfg), "--out", str(tmp_path / "v"), "--iterations", "1", "--parallel-seed", "6"
    )
    assert proc.returncode == 1
    assert "diverged from the sequential path at iteration 1, sampled determinants" in proc.stderr
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert not report["identical"]
    assert report["first_divergence"]["iteration"] == 1
    assert report["first_divergence"]["quantity"] == "sampled determinants"
    assert "DIVERGED at iteration 1: sampled determinants" in (tmp_path / "v" / "report.txt").read_text()


def test_verify_refuses_a_config_without_a_parallel_path(tmp_path):
    cfg = write_config(tmp_path / "seq.yaml", {**OPEN_SHELL, "parallel": {"executor": "sequential"}})
    proc = run_hinqs("verify", "--config", str(cfg), "--out", str(tmp_path / "v"))
    assert proc.returncode == 2
    assert "no parallel path to verify" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_verify_passes_under_the_mpi_executor(tmp_path):
    """`hinqs verify` as rank 0 of mpi4py's pool server: the parallel path solves on 2 MPI ranks."""
    import subprocess
    import sys

    from sqd_helpers import mpiexec

    launcher = mpiexec()
    if launcher is None:
        pytest.skip("mpi4py with an MPI launcher is not installed")
    mpi = {**OPEN_SHELL, "parallel": {"executor": "mpi", "workers": 2, "threads_per_worker": 1}}
    cfg = write_config(tmp_path / "mpi.yaml", mpi)
    argv = [launcher, "-n", "3", sys.executable, "-m", "mpi4py.futures", "-m", "hinqs", "verify", "--config", str(cfg)]
    proc = subprocess.run([*argv, "--out", str(tmp_path / "v"), "--iterations", "2"], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert report["identical"] and report["paths"]["parallel"]["executor"] == "mpi"
    result = json.loads((tmp_path / "v/parallel/ch2_triplet/iter_001/sqd/result.json").read_text())
    assert result["executor"]["executor"] == "mpi" and result["executor"]["workers"] == 2


def test_verify_refuses_mpi_outside_mpi(tmp_path):
    mpi = {**OPEN_SHELL, "parallel": {"executor": "mpi", "workers": 2}}
    proc = run_hinqs("verify", "--config", str(write_config(tmp_path / "mpi.yaml", mpi)), "--out", str(tmp_path / "v"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "run verify under MPI" in proc.stderr
