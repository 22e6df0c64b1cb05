"""The parallel engine on a real system (N2/6-31G, 2 core orbitals frozen, 16 orbitals, (5e,5e)).

Each batch holds 200 sampled determinants (about 50 x 50 = 2.5k in the product space), so a
solve takes well under a second on one thread. Faults are real: injected through the
documented ``HINQS_FAULT_INJECT`` hook inside the task, a worker really receives SIGKILL,
really raises, really sleeps past its timeout or blocks the timer and is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

import numpy as np
import psutil
import pytest
from sqd_helpers import (
    make_subspace,
    mpiexec,
    parallel_settings,
    run_hinqs,
    solver_settings,
    system_with_subspace,
)

from hinqs.errors import StepFailed
from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.loop.settings import with_overrides
from hinqs.sqd import faults
from hinqs.sqd.settings import SQDSettings
from hinqs.sqd.step import run_diagonalization

N_REF = 6  # batches in the reference run; a batch's content does not depend on n_batches
SAMPLES = 200


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    return system_with_subspace(tmp_path_factory.mktemp("n2"), "n2", 800, 60)


def settings(n_batches: int = 4, executor: str = "sequential", **par) -> SQDSettings:
    par = {"workers": 2, "threads_per_worker": 1, "retries": 0, **par}
    return SQDSettings(
        seed=2024,
        iteration=1,
        n_batches=n_batches,
        samples_per_batch=SAMPLES,
        max_dimension=None,
        memory_mb=None,
        shrink_to_memory=False,
        solver=solver_settings(),
        parallel=parallel_settings(executor=executor, **par),
    )


def diagonalize(system, out, s: SQDSettings):
    return run_diagonalization(system["ham"], system["alpha"], system["beta"], system["counts"], out, s)


@pytest.fixture(scope="module")
def reference(system):
    """Sequential, one thread: the reference every other layout must reproduce bit for bit."""
    result = diagonalize(system, system["root"] / "reference", settings(N_REF))
    assert result.summary["n_ok"] == N_REF
    return result


def test_process_pool_is_bit_identical_to_sequential(system, reference, tmp_path, monkeypatch):
    # As inside an sbatch/srun job step: workers must not start MPI (qiskit-addon-sqd would, at import).
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("PMI_SIZE", "4")
    result = diagonalize(system, tmp_path, settings(4, "process", workers=2))
    assert result.batch_energies == reference.batch_energies[:4]
    best = int(np.argmin(reference.batch_energies[:4]))
    assert result.best_batch == best and result.energy == reference.batch_energies[best]
    assert [b["product_shape"] for b in result.batches] == [b["product_shape"] for b in reference.batches[:4]]
    # Through JSON and back, still bit-identical.
    on_disk = json.loads(result.result_path.read_text())
    assert on_disk["batch_energies"] == reference.batch_energies[:4] and on_disk["energy"] == result.energy
    # The winning state is the same batch's, array for array.
    state = result.load_state().as_arrays()
    ref_state = np.load(reference.result_path.parent / "batches" / f"batch_{best:03d}.npz")
    for name in ("ci_strs_a", "ci_strs_b", "amplitudes", "occ_a", "occ_b"):
        assert np.array_equal(state[name], ref_state[name]), name
    assert state["amplitudes"].shape == (len(state["ci_strs_a"]), len(state["ci_strs_b"]))
    assert state["ci_strs_a"].dtype == np.uint64
    info = result.summary["executor"]["worker_info"]
    assert len({w["pid"] for w in info}) == 2
    assert all(w["omp_num_threads"] == "1" and not w["has_launcher_vars"] and not w["mpi_loaded"] for w in info)
    assert all(b["threads"] == 1 and b["worker"]["pid"] != os.getpid() for b in result.batches)


def test_thread_count_changes_only_the_last_bits(system, reference, tmp_path):
    result = diagonalize(system, tmp_path, settings(2, "process", workers=1, threads_per_worker=2))
    assert all(b["threads"] == 2 for b in result.batches)
    for energy, ref in zip(result.batch_energies, reference.batch_energies[:2], strict=True):
        assert abs(energy - ref) < 1e-10


def test_faults_fail_alone(system, reference, tmp_path, monkeypatch):
    """SIGKILL, an exception, a NaN, a soft and a hard timeout: the healthy batch still wins."""
    monkeypatch.setenv(faults.ENV_VAR, "batch=0:kill,batch=1:raise,batch=2:nan,batch=3:sleep=600,batch=4:hang=600")
    s = settings(N_REF, "process", workers=2, retries=0, batch_timeout=5.0, kill_grace=1.0)
    result = diagonalize(system, tmp_path, s)
    records = {b["index"]: b for b in result.batches}
    assert records[0]["error_kind"] == "worker-died" and "SIGKILL" in records[0]["error"]
    assert records[1]["error_kind"] == "exception" and "InjectedFault" in records[1]["error"]
    assert records[2]["error_kind"] == "non-finite" and "nan" in records[2]["error"]
    assert records[3]["error_kind"] == "timeout" and "batch_timeout=5" in records[3]["error"]
    assert records[4]["error_kind"] == "timeout" and "killed" in records[4]["error"]
    hung_pid = records[4]["worker"]["pid"]
    assert hung_pid is not None and (not psutil.pid_exists(hung_pid) or psutil.Process(hung_pid).status() == "zombie")
    for index in range(5):
        assert records[index]["status"] == "failed" and records[index]["energy"] is None
        assert records[index]["attempts"] == 1
    assert records[5]["status"] == "ok" and records[5]["energy"] == reference.batch_energies[5]
    assert result.best_batch == 5 and result.energy == reference.batch_energies[5]
    assert result.summary["n_failed"] == 5 and result.summary["executor"]["pool_starts"] >= 2  # rebuilt after a death
    # Every finished batch is on disk, the failures with their reasons.
    for index in range(N_REF):
        saved = json.loads((tmp_path / "batches" / f"batch_{index:03d}.json").read_text())
        assert saved["status"] == records[index]["status"] and saved["error"] == records[index]["error"]
        assert saved["error_kind"] == records[index]["error_kind"]


def test_a_failed_batch_is_retried(system, reference, tmp_path, monkeypatch):
    """Worker deaths (SIGKILL, a segfault) on the first attempt; the retries succeed, bit-identical."""
    monkeypatch.setenv(faults.ENV_VAR, "batch=1@1:kill=0.3,batch=2@1:segv")
    result = diagonalize(system, tmp_path, settings(4, "process", workers=2, retries=1))
    assert result.batch_energies == reference.batch_energies[:4]
    records = {b["index"]: b for b in result.batches}
    assert records[1]["attempts"] == 2 and any("SIGKILL" in w for w in records[1]["warnings"])
    assert records[2]["attempts"] == 2 and any("SIGSEGV" in w for w in records[2]["warnings"])
    assert records[0]["attempts"] == records[3]["attempts"] == 1


def test_every_batch_failing_fails_the_step(system, tmp_path, monkeypatch):
    monkeypatch.setenv(faults.ENV_VAR, "batch=*:raise")
    with pytest.raises(StepFailed, match="all 2 batches failed: batch 0: InjectedFault"):
        diagonalize(system, tmp_path, settings(2, "sequential", retries=1))
    assert not (tmp_path / "result.json").exists()
    saved = json.loads((tmp_path / "batches" / "batch_001.json").read_text())
    assert saved["status"] == "failed" and saved["attempts"] == 2
    # The command line says so in one line and exits 1.
    proc = run_hinqs(
        "diagonalize", "--hamiltonian", str(system["ham"]), "--subspace", str(system["subspace"]),
        "--out", str(tmp_path),
        "--batches", "2", "--samples-per-batch", str(SAMPLES), "--executor", "sequential", "--retries", "0",
        env={faults.ENV_VAR: "batch=*:raise"},
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("hinqs diagonalize: failed: all 2 batches failed")


def test_a_killed_step_redoes_only_unfinished_batches(system, reference, tmp_path):
    args = [
        "diagonalize", "--hamiltonian", str(system["ham"]), "--subspace", str(system["subspace"]),
        "--out", str(tmp_path),
        "--batches", "4", "--samples-per-batch", str(SAMPLES), "--executor", "sequential", "--seed", "2024",
        "--iteration", "1", "--threads-per-worker", "1",
    ]  # fmt: skip
    # Sequential: the injected SIGKILL in batch 2 kills the step itself, half-way.
    killed = run_hinqs(*args, env={faults.ENV_VAR: "batch=2:kill"})
    assert killed.returncode == -9
    assert not (tmp_path / "result.json").exists()
    assert sorted(p.name for p in (tmp_path / "batches").glob("*.json")) == ["batch_000.json", "batch_001.json"]
    rerun = run_hinqs(*args)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads((tmp_path / "result.json").read_text())
    assert [b["reused"] for b in summary["batches"]] == [True, True, False, False]
    assert summary["batch_energies"] == reference.batch_energies[:4]
    # Other inputs (here the solver) must not reuse those files.
    other = run_hinqs(*args, "--batches", "2", "--solver", "lean")  # the last --batches wins
    assert other.returncode == 0, other.stderr
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["n_reused"] == 0 and summary["settings"]["solver"]["solver"] == "lean"
    assert np.allclose(summary["batch_energies"], reference.batch_energies[:2], rtol=0, atol=1e-9)


@pytest.mark.mpi
def test_mpi_executor_outside_mpi_ranks_is_refused(system, tmp_path):
    if mpiexec() is None:
        pytest.skip("mpi4py or mpiexec is not installed (pip install hinqs[mpi])")
    proc = run_hinqs(
        "diagonalize", "--hamiltonian", str(system["ham"]), "--subspace", str(system["subspace"]),
        "--out", str(tmp_path),
        "--executor", "mpi", timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "python -m mpi4py.futures" in proc.stderr


@pytest.mark.mpi
def test_mpi_ranks_are_bit_identical_to_sequential(system, reference, tmp_path):
    launcher = mpiexec()
    if launcher is None:
        pytest.skip("mpi4py or mpiexec is not installed (pip install hinqs[mpi])")
    proc = run_hinqs(
        "diagonalize", "--hamiltonian", str(system["ham"]), "--subspace", str(system["subspace"]),
        "--out", str(tmp_path),
        "--batches", "4", "--samples-per-batch", str(SAMPLES), "--executor", "mpi", "--seed", "2024",
        "--iteration", "1", "--threads-per-worker", "1", "--retries", "0",
        launcher=[launcher, "-n", "3"], timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["executor"]["executor"] == "mpi" and summary["executor"]["workers"] == 2
    assert len({b["worker"]["pid"] for b in summary["batches"]}) == 2
    assert summary["batch_energies"] == reference.batch_energies[:4]
    assert summary["energy"] == min(reference.batch_energies[:4])


# Issue 9: batches whose product space passes 10,000 determinants, where NumPy's OpenBLAS
# splits Davidson's dot products across its threads. The parent runs with 2 BLAS/OpenMP
# threads, as a plain shell on a 2-core node does; workers are set to 1 before NumPy loads.
WIDE_BATCH_ARGS = ("--batches", "4", "--samples-per-batch", "150", "--seed", "5", "--threads-per-worker", "1")
PARENT_THREADS = {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}


@pytest.fixture(scope="module")
def wide_pool(system):
    ham = load_hamiltonian(system["ham"])
    alpha, beta, counts = make_subspace(ham.norb, ham.nelec, 3000, n_strings=200, seed=11)
    path = system["root"] / "wide_pool.npz"
    np.savez(path, alpha=alpha, beta=beta, counts=counts)
    return path


def run_wide(system, wide_pool, out, *executor_args: str, launcher: list[str] | None = None) -> dict:
    """``hinqs diagonalize`` on the wide pool from the real command line; the result and the merged state."""
    proc = run_hinqs(
        "diagonalize", "--hamiltonian", str(system["ham"]), "--subspace", str(wide_pool), "--out", str(out),
        *WIDE_BATCH_ARGS, "--retries", "0", "--quiet", *executor_args,
        env=PARENT_THREADS, launcher=launcher, timeout=400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(out / "state.npz") as state:
        return {"summary": json.loads((out / "result.json").read_text()), "state": dict(state)}


@pytest.fixture(scope="module")
def wide_sequential(system, wide_pool):
    result = run_wide(system, wide_pool, system["root"] / "wide_sequential", "--executor", "sequential")
    assert all(b["n_determinants"] > 10_000 and b["threads"] == 1 for b in result["summary"]["batches"])
    return result


def assert_same_bits(result: dict, reference: dict) -> None:
    """Every batch energy, the merged energy and every array of the merged state, compared with ``==``."""
    got, ref = result["summary"], reference["summary"]
    assert [repr(e) for e in got["batch_energies"]] == [repr(e) for e in ref["batch_energies"]]
    assert got["energy"] == ref["energy"] and got["best_batch"] == ref["best_batch"]
    assert [b["spin_sq"] for b in got["batches"]] == [b["spin_sq"] for b in ref["batches"]]
    assert result["state"].keys() == reference["state"].keys()
    for name, array in reference["state"].items():
        assert np.array_equal(result["state"][name], array), name


def test_every_thread_pool_is_pinned_during_a_solve():
    """The cause of issue 9: PySCF's thread setting alone left NumPy's OpenBLAS at its load-time count."""
    from threadpoolctl import threadpool_info

    from hinqs.sqd.worker import preload
    from hinqs.threads import thread_limit

    preload("solve_fermion")
    with thread_limit(1) as reported:
        pools = threadpool_info()
    assert reported == 1 and {p["internal_api"] for p in pools} >= {"openblas", "openmp"}
    assert all(p["num_threads"] == 1 for p in pools), pools


def test_cli_process_pool_matches_sequential_bit_for_bit(system, wide_pool, wide_sequential, tmp_path):
    result = run_wide(system, wide_pool, tmp_path, "--executor", "process", "--workers", "2")
    assert len({b["worker"]["pid"] for b in result["summary"]["batches"]}) == 2
    assert_same_bits(result, wide_sequential)


@pytest.mark.mpi
def test_cli_mpi_ranks_match_sequential_bit_for_bit(system, wide_pool, wide_sequential, tmp_path):
    launcher = mpiexec()
    if launcher is None:
        pytest.skip("mpi4py or mpiexec is not installed (pip install hinqs[mpi])")
    result = run_wide(system, wide_pool, tmp_path, "--executor", "mpi", launcher=[launcher, "-n", "3"])
    assert result["summary"]["executor"]["workers"] == 2
    assert_same_bits(result, wide_sequential)


def test_a_kept_pool_serves_several_steps(system, reference, tmp_path):
    """Used as a context manager the process pool starts once for several iterations."""
    from hinqs.sqd.executors import ProcessExecutor

    with ProcessExecutor(2, 1, kill_grace=10.0) as executor:
        first = run_diagonalization(
            system["ham"], system["alpha"], system["beta"], system["counts"], tmp_path / "a", settings(2),
            executor=executor,
        )  # fmt: skip
        pids = {w["pid"] for w in first.summary["executor"]["worker_info"]}
        second = run_diagonalization(
            system["ham"], system["alpha"], system["beta"], system["counts"], tmp_path / "b",
            with_overrides(settings(2), seed=7), executor=executor,
        )  # fmt: skip
    assert first.summary["executor"]["pool_starts"] == 1 and second.summary["executor"]["pool_starts"] == 0
    assert {b["worker"]["pid"] for b in second.batches} <= pids
    assert first.batch_energies == reference.batch_energies[:2]
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids)


@contextlib.contextmanager
def workers_started_by(script: str, folder):
    """Spawn the pool's workers through a shell script standing in for Python (multiprocessing's
    own ``set_executable``): the real process launch, failing the way the script says."""
    import multiprocessing
    from multiprocessing import spawn

    path = folder / "python"
    launch = f'case "$*" in *--multiprocessing-fork*) {script} ;; esac\nexec {sys.executable} "$@"\n'
    path.write_text("#!/bin/sh\n" + launch)
    path.chmod(0o755)
    previous = spawn.get_executable()
    multiprocessing.get_context("spawn").set_executable(str(path))
    try:
        yield
    finally:
        multiprocessing.get_context("spawn").set_executable(previous)


def test_a_pool_that_fails_to_start_is_restarted(system, reference, tmp_path):
    """The first worker launch fails (exit 3, as on a node out of processes): the pool is torn
    down and started again, the batches run, and the kept pool serves the next step too."""
    from hinqs.sqd.executors import ProcessExecutor

    once = f"mkdir {tmp_path}/failed 2>/dev/null && exit 3"
    with workers_started_by(once, tmp_path), ProcessExecutor(2, 1, kill_grace=10.0) as executor:
        first = run_diagonalization(
            system["ham"], system["alpha"], system["beta"], system["counts"], tmp_path / "a", settings(2),
            executor=executor,
        )  # fmt: skip
        second = run_diagonalization(
            system["ham"], system["alpha"], system["beta"], system["counts"], tmp_path / "b",
            with_overrides(settings(2), seed=7), executor=executor,
        )  # fmt: skip
    assert (tmp_path / "failed").is_dir()  # the fault happened
    events = first.summary["executor"]["events"]
    assert any(e.startswith("pool failed to start (try 1)") for e in events), events
    # The dead worker is noticed during the start (1 start recorded) or right after it, when the
    # broken pool refuses the first batch (2): either way no batch is charged and none is lost.
    assert first.summary["executor"]["pool_starts"] in (1, 2) and first.summary["n_ok"] == 2
    assert first.batch_energies == reference.batch_energies[:2]
    assert all(b["attempts"] == 1 for b in first.batches)  # a failed start charges no batch
    assert second.summary["n_ok"] == 2 and second.summary["executor"]["pool_starts"] == 0


def test_a_pool_that_never_starts_is_torn_down_not_kept(system, reference, tmp_path):
    """Every launch fails: the step fails with the reason, no broken pool is kept, and once
    launches work again the same executor solves the next step."""
    from hinqs.sqd.executors import ProcessExecutor

    with ProcessExecutor(2, 1, kill_grace=10.0) as executor:
        never = pytest.raises(StepFailed, match="worker pool failed to start 4 times")
        with workers_started_by("exit 3", tmp_path), never:
            run_diagonalization(
                system["ham"], system["alpha"], system["beta"], system["counts"], tmp_path / "a", settings(2),
                executor=executor,
            )  # fmt: skip
        assert executor.pool is None
        saved = json.loads((tmp_path / "a" / "batches" / "batch_000.json").read_text())
        assert saved["status"] == "failed" and saved["error_kind"] == "worker-died"
        again = run_diagonalization(
            system["ham"], system["alpha"], system["beta"], system["counts"], tmp_path / "b", settings(2),
            executor=executor,
        )  # fmt: skip
    assert again.batch_energies == reference.batch_energies[:2] and again.summary["executor"]["pool_starts"] == 1


@pytest.mark.mpi
def test_mpi_a_rank_that_does_not_answer_is_given_up_at_the_timeout(system, reference, tmp_path):
    """A rank blocks its own timer and sleeps 15 s (it cannot be killed): its batch fails as timed
    out after batch_timeout + kill_grace (3 s), not when the rank returns, and the other rank's
    batch is solved as usual."""
    from conftest import write_config

    launcher = mpiexec()
    if launcher is None:
        pytest.skip("mpi4py or mpiexec is not installed (pip install hinqs[mpi])")
    config = write_config(
        tmp_path / "config.yaml",
        {"systems": [{"name": "n2", "geometry": "N 0 0 0; N 0 0 1.1"}], "parallel": {"kill_grace": 1.0}},
    )
    out = tmp_path / "out"
    proc = run_hinqs(
        "diagonalize", "--hamiltonian", str(system["ham"]), "--subspace", str(system["subspace"]), "--out", str(out),
        "--config", str(config), "--batches", "2", "--samples-per-batch", str(SAMPLES), "--executor", "mpi",
        "--seed", "2024", "--iteration", "1", "--threads-per-worker", "1", "--batch-timeout", "2", "--retries", "0",
        "--max-dimension", "0", env={faults.ENV_VAR: "batch=0@1:hang=15"}, launcher=[launcher, "-n", "3"], timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = {b["index"]: b for b in json.loads((out / "result.json").read_text())["batches"]}
    assert records[0]["status"] == "failed" and records[0]["error_kind"] == "timeout"
    assert "did not answer" in records[0]["error"] and records[0]["seconds"] < 10, records[0]
    assert records[1]["status"] == "ok" and records[1]["energy"] == reference.batch_energies[1]
