"""Shared fixtures: small real molecules and a way to run the real ``hinqs`` command."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Geometries from the design notes (Angstrom).
H2O = "O 0 0 0; H 0.7571 0.5861 0; H -0.7571 0.5861 0"
LIH = "Li 0 0 0; H 0 0 1.5949"
N2 = "N 0 0 0; N 0 0 1.0977"


def run_hinqs(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600):
    """Run the installed ``hinqs`` command line in a fresh process, as Snakemake does."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hinqs", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_RENAMES: list[list[str]] = []  # the open recorders; Python's audit hooks cannot be removed


def _record_rename(event: str, args: tuple) -> None:
    if event == "os.rename" and _RENAMES:  # os.replace raises "os.rename" too
        _RENAMES[-1].append(Path(os.fsdecode(args[1])).name)


sys.addaudithook(_record_rename)


@contextlib.contextmanager
def renamed_files() -> Iterator[list[str]]:
    """The names files were renamed to inside the block, in order: the moment each atomic
    write (hinqs.io.atomic) made its output visible."""
    names: list[str] = []
    _RENAMES.append(names)
    try:
        yield names
    finally:
        _RENAMES.remove(names)


def write_config(path: Path, data: dict) -> Path:
    """Write a config mapping as YAML and return its path."""
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def config_file(tmp_path: Path):
    """Factory: a config file in tmp_path with the given systems and extra settings."""

    def make(*systems: dict, **extra) -> Path:
        return write_config(tmp_path / "config.yaml", {"systems": list(systems), **extra})

    return make


@pytest.fixture(scope="session")
def scan_run(tmp_path_factory) -> Path:
    """One uninterrupted run of the two-point LiH scan with `snakemake --cores 2`, shared by
    the workflow tests (local, resume, MPI, SLURM), which compare their energies to it."""
    from workflow_helpers import SCAN_CONFIG, make_workdir, run_snakemake

    workdir = make_workdir(tmp_path_factory.mktemp("scan"), SCAN_CONFIG)
    proc = run_snakemake(workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


@pytest.fixture
def one_solver_thread():
    """One thread in every BLAS/OpenMP pool (PySCF's solvers): deterministic bits, and no
    spinning threads on a busy 2-core machine (modules opt in with ``pytestmark``)."""
    from hinqs.threads import thread_limit

    with thread_limit(1):
        yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module: tiny models gain nothing from more, and it
    keeps timings stable on a busy machine (modules opt in with ``pytestmark``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
