"""What a user types is what runs: the repository's Snakefile, from the repository root, with
a config file holding only `systems:` (issue 14).

- the file given is the whole config: schema defaults and size-derived values fill what it
  leaves out, nothing comes from config/config.yaml;
- a dry run writes nothing;
- the workflow and the in-process driver give the same summary bit for bit;
- the run ends with one result line per system, and `hinqs summarize` prints it again.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from workflow_helpers import BIN, REPO, comparable, snakemake_from_repo_root, workflow_env

pytestmark = pytest.mark.slow

# LiH / STO-3G (225 determinants): only the molecule, as a chemist would write it.
SYSTEMS_ONLY = {"systems": [{"name": "lih", "geometry": "Li 0 0 0; H 0 0 1.5949", "basis": "sto-3g"}]}


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    """`snakemake --cores 2 --configfile lih.yaml` from the repo root (results outside the repo)."""
    tmp = tmp_path_factory.mktemp("user")
    config_file = tmp / "lih.yaml"
    config_file.write_text(yaml.safe_dump(SYSTEMS_ONLY))
    results = tmp / "results"
    dry = snakemake_from_repo_root("-n", "--configfile", str(config_file), "--config", f"results_dir={results}")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert not results.exists(), "a dry run must write nothing"
    proc = snakemake_from_repo_root(
        "--cores", "2", "--configfile", str(config_file), "--config", f"results_dir={results}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return config_file, results, proc.stdout + proc.stderr


def test_the_config_file_given_is_the_whole_config(user_run):
    from hinqs.config import validate_config

    _, results, _ = user_run
    snapshot = yaml.safe_load((results / ".hinqs" / "config.yaml").read_text())
    expected = validate_config({**SYSTEMS_ONLY, "results_dir": str(results)})
    assert snapshot == expected
    # Nothing of config/config.yaml leaked in (it sets these to fixed numbers).
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert snapshot["nqs"]["samples"] is None and default["nqs"]["samples"] is not None
    assert snapshot["sqd"]["samples_per_batch"] is None and default["sqd"]["samples_per_batch"] is not None
    assert [s["name"] for s in snapshot["systems"]] == ["lih"]


def test_size_derived_settings_reach_the_steps(user_run):
    """225 determinants: no cap, one batch holding the whole subspace (hinqs.loop.defaults)."""
    _, results, _ = user_run
    result = json.loads((results / "lih" / "iter_001" / "sqd" / "result.json").read_text())
    assert len(result["batches"]) == 1
    summary = json.loads((results / "lih" / "summary.json").read_text())
    assert abs(summary["error_mha"]["fci"]) < 1e-6


def test_workflow_and_driver_give_the_same_summary(user_run, tmp_path):
    from hinqs.cli import main
    from hinqs.config import load_config
    from hinqs.loop.driver import run_loop
    from hinqs.loop.settings import RunSettings

    config_file, results, _ = user_run
    run = run_loop(RunSettings.from_config(load_config(config_file)), "lih", tmp_path / "results")
    assert main(["summarize", str(run.system_dir), "--iterations", str(run.iterations)]) == 0
    driver = json.loads((run.system_dir / "summary.json").read_text())
    workflow = json.loads((results / "lih" / "summary.json").read_text())
    assert comparable(driver) == comparable(workflow)


def test_the_answer_is_on_the_screen(user_run):
    _, results, log = user_run
    lines = [line for line in log.splitlines() if line.startswith("lih: E = ")]
    assert len(lines) == 1, log[-3000:]
    line = lines[0]
    assert "mHa vs FCI" in line and "iterations" in line and "stop: accurate" in line
    assert "15 x 15 strings = 225 determinants, 100 % of FCI's 225" in line
    again = subprocess.run(
        [str(BIN / "hinqs"), "summarize", str(results)], capture_output=True, text=True, env=workflow_env()
    )
    assert again.returncode == 0 and again.stdout.strip() == line


def test_a_finished_workflow_prints_its_answer_again(user_run):
    """Rerun with nothing to do: Snakemake calls no hook, the Snakefile still prints the answer;
    a dry run plans and prints none."""
    config_file, results, log = user_run
    answer = [line for line in log.splitlines() if line.startswith("lih: E = ")]
    args = ("--configfile", str(config_file), "--config", f"results_dir={results}")
    again = snakemake_from_repo_root("--cores", "2", *args)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert [line for line in again.stdout.splitlines() if line.startswith("lih: E = ")] == answer
    assert len(answer) == 1
    dry = snakemake_from_repo_root("-n", *args)
    assert dry.returncode == 0 and "lih: E = " not in dry.stdout + dry.stderr


def test_summarize_of_a_folder_without_results_is_one_line(tmp_path):
    proc = subprocess.run(
        [str(BIN / "hinqs"), "summarize", str(tmp_path)], capture_output=True, text=True, env=workflow_env()
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "summary.json" in proc.stderr


def test_no_config_file_runs_the_default_config():
    """Plain `snakemake -n` plans config/config.yaml's system; writes nothing."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    results = REPO / default.get("results_dir", "results")
    existed = results.exists()
    proc = snakemake_from_repo_root("-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{default['systems'][0]['name']}/hamiltonian/meta.json" in proc.stdout
    assert results.exists() == existed


def test_a_user_reference_reruns_only_the_summary(user_run):
    """Adding `reference:` to the system: the summary names it as the best reference and only
    the summarize job runs again (the integrals and iterations stay)."""
    config_file, results, _ = user_run
    data = yaml.safe_load(config_file.read_text())
    fci = json.loads((results / "lih" / "summary.json").read_text())["references"]["fci"]
    data["systems"][0]["reference"] = {"energy": fci - 1e-4, "source": "a published value"}
    with_reference = config_file.with_name("lih_ref.yaml")
    with_reference.write_text(yaml.safe_dump(data))
    meta_mtime = (results / "lih" / "hamiltonian" / "meta.json").stat().st_mtime_ns
    proc = snakemake_from_repo_root(
        "--cores", "2", "--configfile", str(with_reference), "--config", f"results_dir={results}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((results / "lih" / "summary.json").read_text())
    assert summary["best_reference"]["name"] == "a published value"
    assert abs(summary["best_reference"]["error_mha"] - 0.1) < 1e-6
    assert "mHa vs a published value" in proc.stdout
    assert (results / "lih" / "hamiltonian" / "meta.json").stat().st_mtime_ns == meta_mtime
    ran = {line.split("rule ")[1].split(":")[0] for line in proc.stderr.splitlines() if line.startswith("rule ")}
    assert ran <= {"summarize", "all"}, ran
