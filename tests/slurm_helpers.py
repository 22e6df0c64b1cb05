"""Helpers for tests that need a real SLURM cluster (the one-node test cluster of
``cluster/testcluster`` or any other): is SLURM there, submit and wait, run Snakemake.

Tests that use them carry ``@pytest.mark.slurm`` and call :func:`require_slurm` (or use the
``slurm`` fixture of ``test_cluster_slurm.py``): without a usable cluster they are skipped,
unless ``HINQS_REQUIRE_SLURM=1``, in which case they fail, so CI cannot pass by skipping.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "cluster" / "slurm"
SUBMIT_SCRIPT = REPO / "cluster" / "submit.sbatch"

# Node states in which a node can take (more) jobs.
USABLE_NODE_STATES = {"idle", "mixed", "allocated", "completing"}

# Resources the tests ask for: small enough for the test cluster (8 CPUs, 16000 MB declared).
TEST_SBATCH_ARGS = ("--cpus-per-task=1", "--mem=500", "--time=10")


def slurm_status(timeout: float = 15) -> tuple[bool, str]:
    """(usable, why): whether ``sinfo`` answers and some node of an up partition can run jobs."""
    for tool in ("sinfo", "sbatch", "squeue"):
        if shutil.which(tool) is None:
            return False, f"{tool} not found (install and start cluster/testcluster)"
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%N %a %T"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False, f"sinfo did not answer within {timeout:.0f} s"
    if proc.returncode != 0:
        return False, f"sinfo failed: {proc.stderr.strip() or proc.stdout.strip()}"
    nodes = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    if not nodes:
        return False, "sinfo lists no nodes"
    for fields in nodes:
        # A trailing '*' means the node does not respond.
        if len(fields) >= 3 and fields[1] == "up" and fields[2] in USABLE_NODE_STATES:
            return True, f"node {fields[0]} is {fields[2]}"
    return False, "no usable node: " + "; ".join(" ".join(f) for f in nodes)


@functools.cache
def cached_slurm_status() -> tuple[bool, str]:
    """:func:`slurm_status`, asked once per test session (a down controller costs ~10 s a call)."""
    return slurm_status()


def slurm_available() -> bool:
    """True when a SLURM cluster answers and has a node that can run jobs (asked once per session)."""
    return cached_slurm_status()[0]


def slurm_required() -> bool:
    """True when the environment demands SLURM tests run (``HINQS_REQUIRE_SLURM=1``)."""
    return os.environ.get("HINQS_REQUIRE_SLURM", "").strip().lower() in {"1", "true", "yes"}


def require_slurm() -> str:
    """Skip the calling test when SLURM is not usable; fail it instead under HINQS_REQUIRE_SLURM=1."""
    ok, why = cached_slurm_status()
    if not ok:
        if slurm_required():
            pytest.fail(f"HINQS_REQUIRE_SLURM=1 but SLURM is not usable: {why}")
        pytest.skip(f"SLURM not available: {why}")
    return why


def venv_bin(name: str) -> str:
    """Path of a console script of the Python running the tests (the repo's venv), else PATH's."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(name)
    return found


def job_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for sbatch/snakemake: ours, the venv's bin first on PATH, quick status polls.

    sbatch passes the environment on to the job (--export=ALL), so this is also the
    job's environment.
    """
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("HINQS_SLURM_STATUS_INTERVAL", "3")
    # Keep SLURM variables of an enclosing job (tests run inside sbatch) out of the way.
    for key in list(env):
        if key.startswith(("SLURM_", "SBATCH_")) and key != "SLURM_CONF":
            del env[key]
    env.update(extra or {})
    return env


@dataclass
class SbatchResult:
    """What one ``sbatch --wait`` gave: its exit code (the job's), job id and output file."""

    returncode: int
    job_id: str | None
    stdout: str
    stderr: str
    output: Path
    seconds: float

    @property
    def log(self) -> str:
        """The job's output file (stdout + stderr of the batch script); '' if none."""
        try:
            return self.output.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        """A failure message with everything needed to see why."""
        return (
            f"sbatch rc={self.returncode} job={self.job_id} after {self.seconds:.1f} s\n"
            f"--- sbatch stdout ---\n{self.stdout}\n--- sbatch stderr ---\n{self.stderr}\n"
            f"--- job output {self.output} ---\n{self.log}"
        )


def run_sbatch_wait(
    script: str | Path | None = None,
    *,
    script_args: tuple[str, ...] | list[str] = (),
    sbatch_args: tuple[str, ...] | list[str] = TEST_SBATCH_ARGS,
    wrap: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    output: str | Path | None = None,
    job_name: str = "hinqs-test",
    timeout: float = 600,
) -> SbatchResult:
    """Submit ``script`` (or a ``wrap`` command) with ``sbatch --wait`` and wait for it to end.

    ``env`` is added to :func:`job_env` (the job inherits it). ``sbatch_args`` replace the
    small default request (pass e.g. ``("-c", "2", "--mem=2000", "--time=10")``); options here
    override the script's ``#SBATCH`` lines. The job's output goes to ``output`` (default
    ``<cwd>/<job_name>-%j.out``). On timeout the job is cancelled and TimeoutError raised.
    The result's ``returncode`` is the job's exit code (sbatch --wait returns it).
    """
    if (script is None) == (wrap is None):
        raise ValueError("give exactly one of script and wrap")
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    out_pattern = Path(output) if output is not None else cwd / f"{job_name}-%j.out"
    cmd = [
        "sbatch",
        "--wait",
        "--parsable",
        f"--job-name={job_name}",
        f"--output={out_pattern}",
        *sbatch_args,
    ]
    cmd += [f"--wrap={wrap}"] if wrap is not None else [str(script), *script_args]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=job_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        job_id = _parse_job_id(stdout)
        if job_id:
            subprocess.run(["scancel", job_id], check=False)
        raise TimeoutError(f"sbatch job {job_id} did not finish within {timeout} s: {' '.join(cmd)}") from None
    job_id = _parse_job_id(stdout)
    out_path = Path(str(out_pattern).replace("%j", job_id or "%j"))
    return SbatchResult(proc.returncode, job_id, stdout, stderr, out_path, time.monotonic() - start)


def _parse_job_id(stdout: str) -> str | None:
    m = re.search(r"^(\d+)(?:;\S+)?\s*$", stdout, re.MULTILINE)
    return m.group(1) if m else None


def run_snakemake_profile(
    workdir: str | Path,
    *args: str,
    profile: str | Path = PROFILE,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``snakemake --profile <profile>`` in ``workdir`` from here (each rule an sbatch job)."""
    cmd = [venv_bin("snakemake"), "--profile", str(profile), *args]
    return subprocess.run(
        cmd, cwd=workdir, env=job_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )
