"""The Snakemake workflow end to end on a small scan: FCI reached, outputs, resume, MPI."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from workflow_helpers import (
    SCAN_CONFIG,
    comparable,
    energies,
    make_workdir,
    one_system,
    run_snakemake,
    snakemake_args,
    summary,
    workflow_env,
)

# `scan_run` (conftest.py): one uninterrupted `snakemake --cores 2` run of SCAN_CONFIG.

pytestmark = pytest.mark.slow


def test_reaches_fci_and_writes_results(scan_run):
    for system in ("lih_r1", "lih_r2"):
        data = summary(scan_run, system)
        fci = data["references"]["fci"]
        assert abs(data["best_energy"] - fci) < 1e-6
        assert data["error_mha"]["fci"] == pytest.approx((data["best_energy"] - fci) * 1000)
        assert data["within_chemical_accuracy_of_fci"] is True
        assert 1 <= data["iterations"] <= 3
        assert all(r["batches_failed"] == 0 and r["batches_ok"] >= 1 for r in data["per_iteration"])
        assert data["references"]["ccsd_t"] is not None
        results = scan_run / "results" / system
        rows = (results / "energies.csv").read_text().splitlines()
        assert rows[0].startswith("iteration,energy") and len(rows) == data["iterations"] + 1
        assert (results / "convergence.png").read_bytes()[:4] == b"\x89PNG"
    table = (scan_run / "results" / "scan.csv").read_text().splitlines()
    assert len(table) == 3 and table[1].startswith("lih_r1,1.5949,")
    assert (scan_run / "results" / "scan.png").stat().st_size > 0


def test_lint_is_clean(scan_run):
    proc = run_snakemake(scan_run, "--lint")
    assert proc.returncode == 0
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_report_is_generated(scan_run):
    proc = run_snakemake(scan_run, "--report", "report.html")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (scan_run / "report.html").stat().st_size > 10_000


def test_killed_run_resumes_to_the_same_result(scan_run, tmp_path):
    config = one_system(SCAN_CONFIG)
    workdir = make_workdir(tmp_path / "killed", config)
    proc = subprocess.Popen(
        snakemake_args("--cores", "2"),
        cwd=workdir,
        env=workflow_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    target = workdir / "results" / "lih_r1" / "iter_002" / "samples.npz"
    deadline = time.monotonic() + 300
    while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed mid-iteration"
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and every step it started, at once
    proc.wait()
    assert not (workdir / "results" / "lih_r1" / "summary.json").exists()

    # What the README tells a user after a killed run: release the lock, then run again.
    assert run_snakemake(workdir, "--unlock").returncode == 0
    resumed = run_snakemake(workdir, "--cores", "2", "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "prepare" not in _jobs_run(resumed.stdout + resumed.stderr)
    assert comparable(summary(workdir, "lih_r1")) == comparable(summary(scan_run, "lih_r1"))


def _jobs_run(log: str) -> set[str]:
    return {line.split()[1].rstrip(":") for line in log.splitlines() if line.startswith(("rule ", "checkpoint "))}


@pytest.mark.mpi
def test_mpi_executor_runs_batches_on_ranks_with_identical_energies(scan_run, tmp_path):
    pytest.importorskip("mpi4py")
    config = one_system(SCAN_CONFIG, parallel={"executor": "mpi", "mpi_launcher": "mpiexec -n {ranks}"})
    workdir = make_workdir(tmp_path / "mpi", config)
    proc = run_snakemake(workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert energies(workdir, "lih_r1") == energies(scan_run, "lih_r1")
    import json

    result = json.loads((workdir / "results/lih_r1/iter_001/sqd/result.json").read_text())
    assert result["executor"]["executor"] == "mpi"
    ranks = result["executor"]["worker_info"]
    assert len(ranks) == 2 and all(r["mpi_loaded"] for r in ranks)  # mpiexec -n 3: two solver ranks
    rank_pids = {r["pid"] for r in ranks}
    assert {b["worker"]["pid"] for b in result["batches"]} <= rank_pids
    assert os.getpid() not in rank_pids
