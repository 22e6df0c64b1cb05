"""The real workflow through real SLURM jobs: the Snakemake profile and the sbatch head job.

Both runs must give exactly the energies of the local run (same seed), which shows that
nothing about the scheduler reaches the numbers. Skipped without a SLURM cluster; failing
instead under HINQS_REQUIRE_SLURM=1 (as in CI, which starts cluster/testcluster).
"""

from __future__ import annotations

import json

import pytest
import yaml
from slurm_helpers import REPO, SUBMIT_SCRIPT, require_slurm, run_sbatch_wait, run_snakemake_profile
from workflow_helpers import SCAN_CONFIG, SNAKEFILE, energies, make_workdir, one_system, png_image

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture
def slurm():
    return require_slurm()


@pytest.mark.mpi
@pytest.mark.timeout(600)
def test_sbatch_head_job_runs_the_workflow_and_spreads_each_batch_over_mpi_ranks(slurm, scan_run, tmp_path):
    """The whole workflow as one sbatch head job; its diagonalize steps start two MPI ranks that
    solve every batch together (parallel.executor distributed), and the energies are the bits of
    the local run (process pool, one batch per worker)."""
    config = one_system(SCAN_CONFIG, parallel={"executor": "distributed", "mpi_launcher": "mpiexec -n {ranks}"})
    workdir = make_workdir(tmp_path / "head", config)
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
    result = json.loads((workdir / "results/lih_r1/iter_001/sqd/result.json").read_text())
    assert result["executor"]["executor"] == "distributed"
    assert png_image(workdir / "results/lih_r1/convergence.png").shape[:2] == (624, 720)  # no PT2: one panel


@pytest.mark.timeout(1200)
def test_default_config_through_the_profile_from_the_repo_root(slurm, tmp_path):
    """`snakemake --profile cluster/slurm` typed in the repo root, default config, nqs.device auto,
    on the CPU-only test cluster: no GPU is requested, every rule runs, the answer is printed."""
    results = tmp_path / "results"
    # One of the default's iterations (prepare, init_model, sample, subspace, diagonalize, pt2,
    # check, summarize): through the profile every step is a SLURM job with ~13 s of start-up;
    # the loop's later steps and the default's accuracy are tested locally (tests/test_user_path.py,
    # tests/test_workflow.py) and through sbatch (the head job above). The default config with
    # that one change, as a user's file (Snakemake's --config gives nested values as text).
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    default["iterations"] = {**default.get("iterations", {}), "max": 1}
    config = tmp_path / "default_1.yaml"
    config.write_text(yaml.safe_dump(default))
    proc = run_snakemake_profile(
        REPO, "--configfile", str(config), "--config", f"results_dir={results}", profile="cluster/slurm", timeout=1150
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "gpu=1" not in log and "--gpus" not in log
    assert log.count("has been submitted with SLURM jobid") >= 6  # prepare ... summarize
    name = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["systems"][0]["name"]
    result = json.loads((results / name / "iter_001/sqd/result.json").read_text())
    assert result["executor"]["workers"] == 2
    summary = json.loads((results / name / "summary.json").read_text())
    assert summary["iterations"] == 1 and 0 <= summary["error_mha"]["fci"] < 20.0
    assert any(line.startswith(f"{name}: E = ") for line in log.splitlines())


def test_gpu_request_follows_the_cluster(slurm, tmp_path):
    """The test cluster declares no GPU gres: `auto` asks for none; the site setting forces one."""
    from hinqs.loop.workflow_support import gpus_per_nqs_job, slurm_partition_has_gpus

    assert slurm_partition_has_gpus(None) is False
    assert gpus_per_nqs_job("auto", {}) == 0
    results = tmp_path / "results"
    args = ("-n", "--config", f"results_dir={results}")
    plain = run_snakemake_profile(REPO, *args, profile="cluster/slurm", timeout=300)
    forced = run_snakemake_profile(REPO, *args, profile="cluster/slurm", env={"HINQS_SLURM_GPUS": "1"}, timeout=300)
    assert plain.returncode == 0 and forced.returncode == 0, (plain.stderr + forced.stderr)[-3000:]
    assert "gpu=0" in plain.stdout and "gpu=1" not in plain.stdout
    assert "gpu=1" in forced.stdout
    assert not results.exists()


@pytest.mark.timeout(600)
def test_a_failed_job_shows_its_reason_through_the_profile(slurm, tmp_path):
    """A step that fails as a SLURM job (diagonalize given 1 MB) ends the run with the step's own
    line and its log path on the terminal, as locally (tests/test_console.py)."""
    from test_console import STARVED

    config = tmp_path / "starved.yaml"
    config.write_text(yaml.safe_dump(STARVED))
    results = tmp_path / "results"
    # --retries 0: the profile's one retry would run the failing job twice
    proc = run_snakemake_profile(
        REPO, "--configfile", str(config), "--config", f"results_dir={results}", "--retries", "0",
        profile="cluster/slurm", timeout=560,
    )  # fmt: skip
    assert proc.returncode != 0
    shown = [line for line in proc.stderr.splitlines() if line.startswith("diagonalize failed: ")]
    assert len(shown) == 1, proc.stderr[-4000:]
    assert "hinqs diagonalize: error: batch 0:" in shown[0]
    assert shown[0].endswith(f"(full log: {results / 'h2' / 'logs' / 'diagonalize_001.log'})")
