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
    differences,
    energies,
    has_colour,
    make_workdir,
    one_system,
    png_image,
    run_snakemake,
    snakemake_args,
    summary,
    workflow_env,
)

# `scan_run` (conftest.py): one uninterrupted `snakemake --cores 2` run of SCAN_CONFIG.

pytestmark = pytest.mark.slow


def test_reaches_fci_and_writes_results(scan_run):
    """LiH/STO-3G: 225 determinants, all within reach: FCI to rounding. The files hold the run's
    numbers and plots (their content, not only that they exist)."""
    import csv

    for system in ("lih_r1", "lih_r2"):
        data = summary(scan_run, system)
        fci = data["references"]["fci"]
        assert abs(data["best_energy"] - fci) < 1e-9
        assert data["error_mha"]["fci"] == pytest.approx((data["best_energy"] - fci) * 1000)
        assert data["within_chemical_accuracy_of_fci"] is True
        assert 1 <= data["iterations"] <= 3
        assert all(r["batches_failed"] == 0 and r["batches_ok"] >= 1 for r in data["per_iteration"])
        assert data["references"]["ccsd_t"] is not None
        results = scan_run / "results" / system
        rows = list(csv.DictReader((results / "energies.csv").read_text().splitlines()))
        assert [float(r["energy"]) for r in rows] == [r["energy"] for r in data["per_iteration"]]
        assert [r["iteration"] for r in rows] == [str(k) for k in range(1, data["iterations"] + 1)]
        # One panel (the error per iteration; the scan config has no PT2, so no E_var-vs-E_PT2 fit).
        plot = png_image(results / "convergence.png")
        assert plot.shape[:2] == (624, 720) and has_colour(plot, "#1f77b4")
    table = list(csv.DictReader((scan_run / "results" / "scan.csv").read_text().splitlines()))
    assert [(r["system"], float(r["coordinate"])) for r in table] == [("lih_r1", 1.5949), ("lih_r2", 2.2)]
    for row in table:
        data = summary(scan_run, row["system"])
        assert float(row["energy"]) == data["best_energy"] and float(row["fci"]) == data["references"]["fci"]
    # The curve (C0) and the FCI reference (black, dashed) are drawn.
    curve = png_image(scan_run / "results" / "scan.png")
    assert curve.shape[:2] == (480, 720) and has_colour(curve, "#1f77b4") and has_colour(curve, "#000000")


def test_lint_is_clean(scan_run):
    proc = run_snakemake(scan_run, "--lint")
    assert proc.returncode == 0
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_report_is_generated(scan_run):
    proc = run_snakemake(scan_run, "--report", "report.html")
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (scan_run / "report.html").read_text()
    # The captions of the report's entries (workflow/report/*.rst) are in it: the results are.
    for caption in ("Energy error per iteration", "Best HI-NQS-SQD energy", "lih_r1", "lih_r2"):
        assert caption in html, caption


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
    resumed_summary, whole = comparable(summary(workdir, "lih_r1")), comparable(summary(scan_run, "lih_r1"))
    assert resumed_summary == whole, "\n".join(differences(resumed_summary, whole))


def _run_on_ranks(scan_run, tmp_path, executor: str) -> dict:
    """The scan's first system under an MPI executor (mpiexec from the venv): its energies must
    be the process pool's bits; returns iteration 1's result.json."""
    import json

    pytest.importorskip("mpi4py")
    config = one_system(SCAN_CONFIG, parallel={"executor": executor, "mpi_launcher": "mpiexec -n {ranks}"})
    workdir = make_workdir(tmp_path / executor, config)
    proc = run_snakemake(workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert energies(workdir, "lih_r1") == energies(scan_run, "lih_r1")
    result = json.loads((workdir / "results/lih_r1/iter_001/sqd/result.json").read_text())
    assert result["executor"]["executor"] == executor
    return result


@pytest.mark.mpi
def test_distributed_executor_spreads_each_batch_over_the_ranks_with_identical_energies(scan_run, tmp_path):
    """Every batch solved by both ranks together (products split by rows): the same bits as the
    process pool's one-batch-per-worker run of the same config."""
    _run_on_ranks(scan_run, tmp_path, "distributed")


def _jobs_run(log: str) -> set[str]:
    return {line.split()[1].rstrip(":") for line in log.splitlines() if line.startswith(("rule ", "checkpoint "))}


@pytest.mark.mpi
def test_mpi_executor_runs_batches_on_ranks_with_identical_energies(scan_run, tmp_path):
    result = _run_on_ranks(scan_run, tmp_path, "mpi")
    ranks = result["executor"]["worker_info"]
    assert len(ranks) == 2 and all(r["mpi_loaded"] for r in ranks)  # mpiexec -n 3: two solver ranks
    rank_pids = {r["pid"] for r in ranks}
    assert {b["worker"]["pid"] for b in result["batches"]} <= rank_pids
    assert os.getpid() not in rank_pids
