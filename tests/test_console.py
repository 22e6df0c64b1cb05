"""What the terminal shows: a failed job's reason (run for real), the answer of a finished run,
and a convergence plot whose legend covers no line."""

from __future__ import annotations

import json
import os

import pytest
from conftest import write_config
from workflow_helpers import snakemake_from_repo_root

from hinqs.loop.console import failed_jobs, failure_lines, put_own_bin_on_path

# A real failure no planning can foresee: the diagonalize step is given 1 MB (sqd.memory_mb)
# and refuses its batch, after prepare, init-model, sample and subspace ran.
STARVED = {
    "seed": 3,
    "systems": [{"name": "h2", "geometry": "H 0 0 0; H 0 0 0.74"}],
    "nqs": {"samples": 500, "epochs": 5, "device": "cpu", "d_model": 8, "n_layers": 1, "n_heads": 2},
    "sqd": {"memory_mb": 1},
    "iterations": {"max": 1},
}


def test_a_failed_rule_shows_its_reason_and_log_on_the_terminal(tmp_path):
    config = write_config(tmp_path / "starved.yaml", STARVED)
    results = tmp_path / "results"
    proc = snakemake_from_repo_root("--cores", "2", "--configfile", str(config), "--config", f"results_dir={results}")
    assert proc.returncode != 0
    log = results / "h2" / "logs" / "diagonalize_001.log"
    shown = [line for line in proc.stderr.splitlines() if line.startswith("diagonalize failed: ")]
    assert len(shown) == 1, proc.stderr[-3000:]
    assert "hinqs diagonalize: error: batch 0:" in shown[0] and "sqd.memory_mb" in shown[0]
    assert shown[0].endswith(f"(full log: {log})")
    # the line is the one the command wrote, word for word
    assert shown[0].split("diagonalize failed: ")[1].split("  (full log")[0] == log.read_text().strip().splitlines()[-1]


SNAKEMAKE_LOG = """\
[Sun Dec  6 05:10:59 2026]
Error in rule prepare:
    message: None
    jobid: 2
    output: /r/h2/hamiltonian/meta.json
    log: {log} (check log file(s) for error details)
    shell:
        hinqs prepare ... > {log} 2>&1
        (command exited with non-zero exit code)
Error in rule sample:
    jobid: 5
    output: /r/lih/iter_001/samples.npz
Shutting down, this might take some time.
Error in rule prepare:
    jobid: 2
    log: {log} (check log file(s) for error details)
"""


def test_failed_jobs_are_read_from_snakemakes_log(tmp_path):
    job_log = tmp_path / "prepare.log"
    job_log.write_text("some PySCF chatter\nhinqs prepare: error: system 'h2': unknown basis 'x'\n")
    text = SNAKEMAKE_LOG.format(log=job_log)
    assert failed_jobs(text) == [("prepare", [str(job_log)]), ("sample", [])]
    assert failure_lines(text) == [
        f"prepare failed: hinqs prepare: error: system 'h2': unknown basis 'x'  (full log: {job_log})"
    ]
    job_log.write_text("Traceback (most recent call last):\n  ...\nZeroDivisionError: float division by zero\n")
    assert failure_lines(text)[0].startswith("prepare failed: ZeroDivisionError: float division by zero")
    job_log.unlink()
    assert failure_lines(text) == [f"prepare failed; its log {job_log} is empty or missing"]


def test_own_bin_goes_first_on_path(tmp_path):
    (tmp_path / "hinqs").write_text("")
    env = {"PATH": "/usr/bin"}
    put_own_bin_on_path(env, str(tmp_path / "python"))
    assert env["PATH"] == f"{tmp_path}{os.pathsep}/usr/bin"
    put_own_bin_on_path(env, str(tmp_path / "python"))
    assert env["PATH"].count(str(tmp_path)) == 1
    other = {"PATH": "/usr/bin"}
    put_own_bin_on_path(other, str(tmp_path / "elsewhere" / "python"))
    assert other == {"PATH": "/usr/bin"}


@pytest.fixture(scope="module")
def summary_with_pt2() -> dict:
    """A summary.json with PT2 and a fit, in the shape `hinqs summarize` writes (energies of
    H2O/6-31G's capped run: errors of both signs after PT2)."""
    fci = -76.11995518792034
    energies = [-76.11707823819893, -76.11834235439963, -76.11891201740458, -76.11935980259489]
    pt2 = [-0.0027995, -0.0015173, -0.0010391, -0.0005745]
    records = [
        {"iteration": k + 1, "energy": e, "e_pt2": p, "e_pt2_error": 0.0, "e_var_plus_pt2": e + p}
        for k, (e, p) in enumerate(zip(energies, pt2, strict=True))
    ]
    return {
        "system": "h2o_631g",
        "norb": 12,
        "nelec": [4, 4],
        "per_iteration": records,
        "references": {"hf": -75.98397447272202, "ccsd": -76.11844574067362, "ccsd_t": -76.1194306608957, "fci": fci},
        "best_reference": {"name": "FCI", "energy": fci},
        "pt2": {"extrapolated": {"energy": -76.11994129939761, "slope": -0.994, "uncertainty": 5.1e-05}},
    }


def test_the_convergence_plot_reads_at_a_glance(summary_with_pt2):
    from hinqs.summary.plot import convergence_figure

    fig = convergence_figure(summary_with_pt2)
    fig.canvas.draw()
    left, right = fig.axes
    assert left.get_yscale() == "symlog"  # signed: an error below the reference shows as one
    assert min(left.get_ylim()) < 0 < max(left.get_ylim())
    for ax in (left, right):
        assert "mHa" in ax.get_ylabel()
        assert ax.get_xlabel()
        legend = ax.get_legend()
        assert not legend.get_window_extent().overlaps(ax.get_window_extent()), "a legend covers the lines"
    assert "(mHa)" in right.get_xlabel() and "(mHa)" in right.get_ylabel()
    fit = next(t.get_text() for t in right.get_legend().get_texts() if t.get_text().startswith("fit"))
    assert fit.endswith(" mHa") and "Ha " not in fit.replace("mHa", ""), fit


def test_the_answer_line_explains_its_terms(summary_with_pt2):
    from hinqs.summary import result_line

    summary = json.loads(json.dumps(summary_with_pt2))
    summary.update(
        best_energy=-76.11935980259489,
        best_iteration=4,
        iterations=4,
        fci_space=245025,
        stop_reason="budget: 4 iterations",
        seconds_per_stage={"sample": 10.0},
    )
    summary["best_reference"]["error_mha"] = 0.595
    summary["per_iteration"][3].update(
        subspace_size=4733, subspace_dimension=10404, product_shape=[102, 102], batch_dimensions=[8464, 10404]
    )
    line = result_line(summary)
    assert "E = -76.1193598026 Ha (iteration 4)" in line
    assert "the largest of 2 batches' product spaces, 102 x 102 strings = 10,404 determinants" in line
    assert "4.25 % of FCI's 245,025" in line and "a subspace of 4,733" in line
    assert "stop: budget: 4 iterations after 4 iterations" in line


def test_a_run_at_fci_plots_points_on_zero_without_a_multiplier(summary_with_pt2):
    """Errors of 1e-11 mHa (FCI reached) read as zero, not as an axis scaled by 1e-11."""
    from hinqs.summary.plot import convergence_figure

    summary = json.loads(json.dumps(summary_with_pt2))
    fci = summary["best_reference"]["energy"]
    for record in summary["per_iteration"]:
        record.update(energy=fci + 2e-14, e_pt2=0.0, e_var_plus_pt2=fci + 1e-14)
    summary["pt2"]["extrapolated"] = None
    fig = convergence_figure(summary)
    fig.canvas.draw()
    right = fig.axes[1]
    assert right.yaxis.get_offset_text().get_text() == "" and right.xaxis.get_offset_text().get_text() == ""
    assert right.get_ylim()[1] - right.get_ylim()[0] >= 0.01


def test_the_close_atoms_override_does_not_rerun_prepare():
    """allow_close_atoms is a check, not chemistry: it is no parameter of the prepare rule, so
    results made before the key existed (or with it toggled) keep their Hamiltonian."""
    from hinqs.config import validate_config
    from hinqs.loop.workflow_support import prepare_inputs

    config = validate_config({"systems": [{"name": "h2", "geometry": "H 0 0 0; H 0 0 0.74"}]})
    assert config["systems"][0]["allow_close_atoms"] is False
    params = prepare_inputs(config, "h2")
    assert "allow_close_atoms" not in params and params["geometry"] == "H 0 0 0; H 0 0 0.74"


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda t: t / "nope.yaml", "snakemake: config file not found: "),
        (lambda t: (t / "bad.yaml").write_text("systems: [\n") and t / "bad.yaml", "is not valid YAML (line 2"),
        (lambda t: t, "is a folder"),
    ],
    ids=["missing", "malformed", "folder"],
)
def test_a_config_file_snakemake_cannot_load_is_one_line(make, expected, tmp_path):
    """`snakemake --configfile <file>` typed in the repo root (the environment's snakemake,
    hinqs.loop.front): Snakemake itself loads the file before the Snakefile and answers with a
    traceback; here one line, exit 2, nothing written."""
    path = make(tmp_path)
    proc = snakemake_from_repo_root("-n", "--configfile", str(path), "--config", f"results_dir={tmp_path / 'r'}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert not (tmp_path / "r").exists()


def test_config_options_are_read_as_snakemake_reads_them():
    from hinqs.loop.front import config_files

    argv = ["--cores", "2", "--configfile", "a.yaml", "b.yaml", "-n", "--configfiles=c.yaml", "--config", "x=1"]
    assert config_files(argv) == ["a.yaml", "b.yaml", "c.yaml"]
