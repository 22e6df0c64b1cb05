"""The real workflow through real SLURM jobs: the Snakemake profile and the sbatch head job.

Both runs must give exactly the energies of the local run (same seed), which shows that
nothing about the scheduler reaches the numbers. Skipped without a SLURM cluster; failing
instead under HINQS_REQUIRE_SLURM=1 (as in CI, which starts cluster/testcluster).
"""

from __future__ import annotations

import json

import pytest
from slurm_helpers import REPO, SUBMIT_SCRIPT, require_slurm, run_sbatch_wait, run_snakemake_profile
from workflow_helpers import SCAN_CONFIG, SNAKEFILE, energies, make_workdir, one_system

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CONFIG = one_system(SCAN_CONFIG)
# Every rule is its own sbatch job under the profile: one iteration keeps the chain short.
ONE_ITERATION = one_system(SCAN_CONFIG, iterations={"max": 1})


@pytest.fixture
def slurm():
    return require_slurm()


@pytest.mark.timeout(600)
def test_profile_runs_every_rule_as_an_sbatch_job(slurm, scan_run, tmp_path):
    workdir = make_workdir(tmp_path / "profile", ONE_ITERATION)
    proc = run_snakemake_profile(workdir, "--snakefile", str(SNAKEFILE), "--configfile", "config.yaml", timeout=560)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    log = proc.stdout + proc.stderr
    assert log.count("has been submitted with SLURM jobid") >= 6  # prepare ... summarize
    assert energies(workdir, "lih_r1") == energies(scan_run, "lih_r1")[:1]
    result = json.loads((workdir / "results/lih_r1/iter_001/sqd/result.json").read_text())
    assert result["executor"]["workers"] == 2


@pytest.mark.timeout(600)
def test_sbatch_head_job_runs_the_workflow(slurm, scan_run, tmp_path):
    workdir = make_workdir(tmp_path / "head", CONFIG)
    res = run_sbatch_wait(
        SUBMIT_SCRIPT,
        script_args=("config.yaml",),
        cwd=REPO,
        env={"HINQS_WORKDIR": str(workdir), "HINQS_MODE": "local", "HINQS_SNAKEFILE": str(SNAKEFILE)},
        sbatch_args=("--cpus-per-task=2", "--mem=4000", "--time=15"),
        output=workdir / "head-%j.log",
        timeout=560,
    )
    assert res.returncode == 0, res.describe()
    assert energies(workdir, "lih_r1") == energies(scan_run, "lih_r1")
    assert (workdir / "results/lih_r1/convergence.png").exists()
