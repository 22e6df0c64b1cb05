"""The SLURM side against a real cluster (cluster/testcluster): plain sbatch, the Snakemake
profile cluster/slurm, and the head-job script cluster/submit.sbatch in both modes.

Skipped when no SLURM cluster answers; failing instead when HINQS_REQUIRE_SLURM=1.
Start one with ``bash cluster/testcluster/install.sh && bash cluster/testcluster/start.sh``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from slurm_helpers import REPO, SUBMIT_SCRIPT, require_slurm, run_sbatch_wait

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# A throwaway two-rule workflow: `a` asks for 2 threads, `b` for 1; each writes what the
# job it ran in saw.
TWO_RULES = textwrap.dedent(
    """
    SEEN = "threads={threads} omp=$OMP_NUM_THREADS job=${{SLURM_JOB_ID:-none}} cpus=${{SLURM_CPUS_PER_TASK:-none}}"

    rule all:
        input: "b.txt"

    rule a:
        output: "a.txt"
        threads: 2
        shell: "echo " + SEEN + " > {output}"

    rule b:
        input: "a.txt"
        output: "b.txt"
        shell: "cat {input} > {output}; echo " + SEEN + " >> {output}"
    """
)


def parse_lines(path: Path) -> list[dict[str, str]]:
    """'k=v k=v' lines -> dicts."""
    return [dict(kv.split("=", 1) for kv in line.split()) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def slurm() -> str:
    """A usable SLURM cluster, or skip (fail under HINQS_REQUIRE_SLURM=1)."""
    return require_slurm()


@pytest.mark.timeout(180)
def test_sbatch_wait_runs_a_job(slurm, tmp_path):
    res = run_sbatch_wait(
        wrap="echo hello-from-$SLURM_JOB_ID; echo cpus=$SLURM_CPUS_PER_TASK",
        sbatch_args=("--cpus-per-task=2", "--mem=500", "--time=5"),
        cwd=tmp_path,
        timeout=150,
    )
    assert res.returncode == 0, res.describe()
    assert res.job_id is not None
    assert f"hello-from-{res.job_id}" in res.log, res.describe()
    assert "cpus=2" in res.log


@pytest.mark.timeout(180)
def test_sbatch_wait_reports_job_failure(slurm, tmp_path):
    res = run_sbatch_wait(wrap="echo failing; exit 3", cwd=tmp_path, timeout=150)
    assert res.returncode == 3, res.describe()
    assert "failing" in res.log


@pytest.mark.timeout(240)
def test_submit_sbatch_local_mode(slurm, tmp_path):
    (tmp_path / "Snakefile").write_text(TWO_RULES)
    res = run_sbatch_wait(
        SUBMIT_SCRIPT,
        cwd=REPO,  # as a user does: sbatch from the repository root
        env={"HINQS_WORKDIR": str(tmp_path), "HINQS_MODE": "local"},
        sbatch_args=("--cpus-per-task=2", "--mem=2000", "--time=10"),
        output=tmp_path / "head-%j.log",
        timeout=200,
    )
    assert res.returncode == 0, res.describe()
    a, b = parse_lines(tmp_path / "b.txt")
    # Both rules ran inside the head job's allocation, threads from the rules.
    assert a["job"] == b["job"] == res.job_id, (a, b, res.job_id)
    assert (a["threads"], a["omp"]) == ("2", "2")
    assert (b["threads"], b["omp"]) == ("1", "1")
    assert "mode=local cpus=2" in res.log
    assert "--rerun-incomplete" in res.log

    # Resubmitting finds nothing to do.
    res2 = run_sbatch_wait(
        SUBMIT_SCRIPT,
        cwd=REPO,
        env={"HINQS_WORKDIR": str(tmp_path)},
        sbatch_args=("--cpus-per-task=2", "--mem=2000", "--time=10"),
        output=tmp_path / "head-%j.log",
        timeout=200,
    )
    assert res2.returncode == 0, res2.describe()
    assert "Nothing to be done" in res2.log, res2.describe()


@pytest.mark.timeout(480)
def test_submit_sbatch_profile_mode(slurm, tmp_path):
    """The head job (1 CPU) submits each rule as its own job through the profile (threads ->
    --cpus-per-task and OMP threads); the node over-declares CPUs so they fit."""
    (tmp_path / "Snakefile").write_text(TWO_RULES)
    res = run_sbatch_wait(
        SUBMIT_SCRIPT,
        cwd=REPO,
        env={"HINQS_WORKDIR": str(tmp_path), "HINQS_MODE": "profile"},
        sbatch_args=("--cpus-per-task=1", "--mem=2000", "--time=15"),
        output=tmp_path / "head-%j.log",
        timeout=450,
    )
    assert res.returncode == 0, res.describe()
    a, b = parse_lines(tmp_path / "b.txt")
    jobs = {res.job_id, a["job"], b["job"]}
    assert len(jobs) == 3, (a, b, res.job_id)
    assert (a["cpus"], a["omp"]) == ("2", "2")
    assert (b["cpus"], b["omp"]) == ("1", "1")
