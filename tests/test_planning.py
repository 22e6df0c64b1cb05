"""What a new user gets wrong is refused before any job, in one line, through both doors.

Each case is a user's config file: ``snakemake -n --configfile it`` typed in the repository
root must end with exit 2, at most three lines naming the problem, no traceback and no
results folder; ``hinqs prepare`` with the same file must end with exit 2 and the same
problem in one line, writing nothing. The chemistry is real (PySCF builds each molecule).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import run_hinqs, write_config
from workflow_helpers import snakemake_from_repo_root

H2 = {"name": "h2", "geometry": "H 0 0 0; H 0 0 0.74"}
HF = {"name": "hf", "geometry": "H 0 0 0; F 0 0 0.92"}


def _h2_fcidump(path: Path, keep_lines: int | None = None) -> str:
    """H2/STO-3G's FCIDUMP from PySCF, cut to its first ``keep_lines`` lines (a truncated copy)."""
    from pyscf import gto, scf
    from pyscf.tools import fcidump

    fcidump.from_scf(scf.RHF(gto.M(atom=H2["geometry"], basis="sto-3g", verbose=0)).run(), str(path))
    if keep_lines is not None:
        path.write_text("\n".join(path.read_text().splitlines()[:keep_lines]) + "\n")
    return str(path)


CASES = {
    # numbers and counts
    "nan tolerance": ({"systems": [H2], "sqd": {"conv_tol": float("nan")}}, "sqd.conv_tol: nan is not a finite"),
    "infinite convergence threshold": (
        {"systems": [H2], "iterations": {"tol": float("inf")}},
        "iterations.tol: inf is not a finite number",
    ),
    "infinite coordinate of a scan": (
        {"systems": [{**H2, "coordinate": float("-inf")}]},
        "systems[0].coordinate: -inf is not a finite",
    ),
    "a count written as a float": (
        {"systems": [H2], "sqd": {"n_batches": 3.0}},
        "sqd.n_batches: 3.0 is not an integer",
    ),
    "a frozen core written as a float": (
        {"systems": [{**HF, "frozen_core": 1.0}]},
        "systems[0].frozen_core: 1.0 is not an integer",
    ),
    "no systems": ({"systems": []}, "systems: the list is empty"),
    "a misspelt top-level key": (
        {"systems": [H2], "iteration": {"max": 2}},
        "unknown key 'iteration' (did you mean 'iterations'?)",
    ),
    "an empty results folder name": ({"systems": [H2], "results_dir": " "}, "results_dir is empty"),
    # chemistry
    "atoms far too close": (
        {"systems": [{**HF, "geometry": "H 0 0 0; F 0 0 0.1"}]},
        "are 0.1 Angstrom apart, under 0.5 x their covalent radii",
    ),
    "a bond too short in Bohr": (
        {"systems": [{**HF, "geometry": "H 0 0 0; F 0 0 0.7", "unit": "bohr"}]},
        "0.3704 Angstrom apart",
    ),
    "misspelt basis": ({"systems": [{**H2, "basis": "6-31gxx"}]}, "unknown basis '6-31gxx'"),
    "unknown element": ({"systems": [{**H2, "geometry": "Xx 0 0 0; H 0 0 0.74"}]}, "unknown element 'Xx'"),
    "charge beyond the electrons": ({"systems": [{**H2, "charge": 3}]}, "the molecule has -1 electrons"),
    "spin beyond the electrons": ({"systems": [{**H2, "spin": 4}]}, "2 electrons are incompatible with spin=4"),
    "odd electrons with spin 0": (
        {"systems": [{**H2, "geometry": "H 0 0 0; H 0 0 0.74; H 0 0 1.48"}]},
        "3 electrons are incompatible with spin=0",
    ),
    "frozen core takes every electron": ({"systems": [{**HF, "frozen_core": 5}]}, "nothing to correlate"),
    "no virtual orbital": ({"systems": [{"name": "he", "geometry": "He 0 0 0"}]}, "nothing to correlate"),
    "active space beyond the basis": ({"systems": [{**HF, "active_space": [4, 9]}]}, "larger than the basis"),
    # combinations a step refuses
    "launcher with an unknown placeholder": (
        {"systems": [H2], "parallel": {"executor": "mpi", "mpi_launcher": "srun -n {rank}"}},
        "unknown placeholder {rank}",
    ),
    "distributed without a launcher": (
        {"systems": [H2], "parallel": {"executor": "distributed", "mpi_launcher": " "}},
        "needs parallel.mpi_launcher",
    ),
    "distributed with a solver it cannot split": (
        {"systems": [H2], "parallel": {"executor": "distributed"}, "sqd": {"solver": "lean"}},
        "set sqd.solver: direct",
    ),
}
# Needs a file made at run time: (config maker, expected).
FILE_CASES = {
    "truncated FCIDUMP": (
        lambda t: {"systems": [{"name": "h2", "fcidump": _h2_fcidump(t / "FCIDUMP", keep_lines=6)}]},
        "the file is truncated or incomplete",
    ),
}


def _config(case: str, tmp_path: Path) -> Path:
    data = CASES[case][0] if case in CASES else FILE_CASES[case][0](tmp_path)
    return write_config(tmp_path / "my.yaml", data)


def _expected(case: str) -> str:
    return (CASES.get(case) or FILE_CASES[case])[1]


@pytest.mark.parametrize("case", [*CASES, *FILE_CASES])
def test_every_case_is_refused_by_the_planner(case, tmp_path):
    """The function the Snakefile calls, in-process: each case raises its one-line InputError."""
    from hinqs.errors import InputError
    from hinqs.loop.planning import checked_config

    config = _config(case, tmp_path)
    with pytest.raises(InputError) as refused:
        checked_config(yaml.safe_load(config.read_text()), str(config))
    assert _expected(case) in str(refused.value) and "\n" not in str(refused.value)


# Through `snakemake -n` from the repository root, one case of each kind (a Snakemake start
# costs seconds; the planner's every case is above).
SNAKEMAKE_CASES = [
    "nan tolerance",
    "a count written as a float",
    "no systems",
    "a misspelt top-level key",
    "an empty results folder name",
    "atoms far too close",
    "misspelt basis",
    "spin beyond the electrons",
    "no virtual orbital",
    "launcher with an unknown placeholder",
    "distributed with a solver it cannot split",
    "truncated FCIDUMP",
]


@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_refused_when_planned_in_one_line(case, tmp_path):
    config = _config(case, tmp_path)
    results = tmp_path / "results"
    # the case's own results_dir, else one in tmp_path (nothing may appear there)
    own = "results_dir" in yaml.safe_load(config.read_text())
    where = () if own else ("--config", f"results_dir={results}")
    proc = snakemake_from_repo_root("-n", "--configfile", str(config), *where)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) <= 3 and any(_expected(case) in line for line in lines), lines
    assert "Traceback" not in proc.stderr and "schema" not in proc.stderr
    assert not results.exists()


# The command's door for one case of each kind (the rest share the same checks, and
# test_bad_input*.py hands the commands many more).
COMMAND_CASES = [
    "nan tolerance",
    "an empty results folder name",
    "a count written as a float",
    "no systems",
    "atoms far too close",
    "misspelt basis",
    "unknown element",
    "frozen core takes every electron",
    "no virtual orbital",
    "truncated FCIDUMP",
]


@pytest.mark.parametrize("case", COMMAND_CASES)
def test_refused_by_the_command_in_one_line(case, tmp_path):
    """The same file handed to `hinqs prepare`: one line, exit 2, no output folder."""
    config = _config(case, tmp_path)
    out = tmp_path / "out" / "hamiltonian"
    proc = run_hinqs("prepare", "--config", str(config), "--out", str(out))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and _expected(case) in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_close_atoms_run_when_the_system_says_so(tmp_path):
    """allow_close_atoms: true lets a compressed geometry through planning (0.3 A H2 is 0.48 of 0.62 A)."""
    close = {**H2, "geometry": "H 0 0 0; H 0 0 0.3"}
    refused = write_config(tmp_path / "close.yaml", {"systems": [close]})
    allowed = write_config(tmp_path / "allowed.yaml", {"systems": [{**close, "allow_close_atoms": True}]})
    args = ("--config", f"results_dir={tmp_path / 'results'}")
    assert snakemake_from_repo_root("-n", "--configfile", str(refused), *args).returncode == 2
    proc = snakemake_from_repo_root("-n", "--configfile", str(allowed), *args)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_missing_config_file_is_one_line_through_make(tmp_path):
    """`make run CONFIG=typo.yaml`: one line naming the file, before Snakemake's traceback."""
    import subprocess

    from workflow_helpers import REPO, workflow_env

    proc = subprocess.run(
        ["make", "-s", "run", f"CONFIG={tmp_path / 'typo.yaml'}"],
        cwd=REPO,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode != 0
    assert any("config file not found" in line and "typo.yaml" in line for line in output), output
    assert not any("Traceback" in line for line in output)


def test_an_fcidump_is_an_input_of_prepare(tmp_path):
    """An edited FCIDUMP reruns prepare: Snakemake plans it as the rule's input."""
    config = write_config(tmp_path / "my.yaml", {"systems": [{"name": "h2", "fcidump": _h2_fcidump(tmp_path / "F")}]})
    proc = snakemake_from_repo_root("-n", "--configfile", str(config), "--config", f"results_dir={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    block = proc.stdout.split("rule prepare:")[1].split("\n\n")[0]
    assert f"input: {tmp_path / 'F'}" in block, block
