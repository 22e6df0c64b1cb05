"""Subspace growth, convergence decisions and the workflow's iteration walk."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO

from hinqs.errors import InputError
from hinqs.io.determinants import Determinants
from hinqs.io.files import read_determinants, write_determinants
from hinqs.loop.convergence import next_status
from hinqs.loop.workflow_support import (
    diagonalize_launcher,
    diagonalize_threads,
    iterations_to_run,
    pt2_launcher,
    pt2_mem_per_cpu,
    snapshot_config,
    verify_launcher,
)
from hinqs.subspace.grow import grow_subspace

U = np.uint64


def dets(pairs, counts=None):
    alpha = np.array([a for a, _ in pairs], U)
    beta = np.array([b for _, b in pairs], U)
    return Determinants(alpha, beta, np.array(counts or [1] * len(pairs), np.int64))


def test_subspace_accumulates_counts_and_always_holds_hf(tmp_path):
    first = grow_subspace(None, dets([(0b0101, 0b0011)], [5]), 4, (2, 2))
    assert sorted(zip(first.alpha.tolist(), first.beta.tolist(), first.counts.tolist(), strict=True)) == [
        (0b0011, 0b0011, 1),
        (0b0101, 0b0011, 5),
    ]
    second = grow_subspace(first, dets([(0b0101, 0b0011), (0b1001, 0b0110)], [2, 3]), 4, (2, 2))
    table = dict(
        zip(zip(second.alpha.tolist(), second.beta.tolist(), strict=True), second.counts.tolist(), strict=True)
    )
    assert table == {(0b0011, 0b0011): 2, (0b0101, 0b0011): 7, (0b1001, 0b0110): 3}
    write_determinants(tmp_path / "b.npz", second)
    loaded = read_determinants(tmp_path / "b.npz")
    assert np.array_equal(loaded.alpha, second.alpha) and np.array_equal(loaded.counts, second.counts)


def test_subspace_rejects_wrong_electron_counts():
    with pytest.raises(InputError, match="sampled determinants are invalid"):
        grow_subspace(None, dets([(0b0111, 0b0011)]), 4, (2, 2))


def test_convergence_needs_window_consecutive_small_changes():
    kw = {"tol": 1e-6, "window": 2, "max_iterations": 10}
    s = next_status(None, 1, -1.0, **kw)
    assert not s.stop and s.delta is None
    s = next_status(s, 2, -1.0000000005, **kw)
    assert s.streak == 1 and not s.stop
    s = next_status(s, 3, -1.1, **kw)
    assert s.streak == 0 and not s.stop
    s = next_status(s, 4, -1.05, **kw)  # a worse iteration keeps the best but is no sign of convergence
    assert s.streak == 0 and s.delta == 0.0 and s.best_energy == -1.1 and not s.stop
    s = next_status(s, 5, -1.1, **kw)
    assert s.streak == 1 and not s.stop
    s = next_status(s, 6, -1.1, **kw)
    assert s.stop and s.reason == "settled" and not s.converged  # no PT2: no claim of accuracy
    assert s.best_iteration == 3 and s.energies[-1] == -1.1


def test_a_rising_energy_never_counts_as_converged():
    """A cap that evicts what the state needs makes the energy climb: that is not convergence."""
    kw = {"tol": 1e-6, "window": 2, "max_iterations": 6}
    s = next_status(None, 1, -1.0, **kw)
    for k, energy in enumerate([-0.9995, -0.999, -0.9985, -0.998, -0.9975], start=2):
        s = next_status(s, k, energy, **kw)
        assert s.streak == 0 and not s.converged
    assert s.reason == "max_iterations" and s.best_iteration == 1


def test_convergence_stops_at_max_iterations():
    s = next_status(None, 1, -1.0, tol=1e-6, window=2, max_iterations=1)
    assert s.stop and s.reason == "max_iterations" and not s.converged


def test_iteration_walk_stops_at_first_stop(tmp_path):
    from hinqs.loop.convergence import write_status

    status = None
    for k, energy in ((1, -1.0), (2, -1.0), (3, -1.0)):
        status = next_status(status, k, energy, tol=1e-6, window=2, max_iterations=10)
        write_status(tmp_path / f"{k}.json", status)
    assert status.stop
    assert iterations_to_run(lambda k: str(tmp_path / f"{k}.json"), 10) == 3


def test_snapshot_rewrites_only_on_change(tmp_path):
    path = tmp_path / "cfg.yaml"
    snapshot_config({"a": 1}, path)
    stamp = path.stat().st_mtime_ns
    snapshot_config({"a": 1}, path)
    assert path.stat().st_mtime_ns == stamp
    snapshot_config({"a": 2}, path)
    assert "a: 2" in path.read_text()


def test_launcher_and_threads():
    par = {"executor": "mpi", "workers": 3, "threads_per_worker": 2, "mpi_launcher": "srun -n {ranks}"}
    assert diagonalize_launcher(par) == "srun -n 4 python -m mpi4py.futures -m hinqs"
    assert diagonalize_launcher({**par, "executor": "process"}) == "hinqs"
    # distributed: SPMD on `workers` ranks; verify (one process) stays out of MPI
    assert diagonalize_launcher({**par, "executor": "distributed"}) == "srun -n 3 python -m mpi4py -m hinqs"
    assert verify_launcher({**par, "executor": "distributed"}) == "hinqs"
    assert verify_launcher(par) == diagonalize_launcher(par)
    # the PT2 runs on the distributed executor's ranks (a share of the rows each), else in one process
    assert pt2_launcher({**par, "executor": "distributed"}) == "srun -n 3 python -m mpi4py -m hinqs"
    assert pt2_launcher(par) == pt2_launcher({**par, "executor": "process"}) == "hinqs"
    assert diagonalize_threads({**par, "executor": "process"}) == 6
    assert diagonalize_threads({**par, "executor": "sequential"}) == 2


def test_a_pt2_on_ranks_asks_a_whole_state_per_rank_per_cpu():
    """Every PT2 rank holds the state: its per-CPU request is one process's need over the rank's
    CPUs, and the other executors ask none per CPU (their rule asks mem_mb)."""
    from hinqs.loop.workflow_support import pt2_mem_mb

    sqd = {"n_batches": 1, "samples_per_batch": 2000, "max_dimension": 16_000_000, "solver": "direct"}
    par = {"executor": "distributed", "workers": 4, "threads_per_worker": 2}
    per_cpu = pt2_mem_per_cpu(sqd, par)
    assert per_cpu * 2 >= pt2_mem_mb(sqd, par) > per_cpu
    assert pt2_mem_per_cpu(sqd, {**par, "executor": "process"}) == 0


def test_diagonalize_memory_request_grows_with_batch_and_workers():
    from hinqs.loop.workflow_support import diagonalize_mem_mb
    from hinqs.sqd.dimension import AUTO_MAX_DIMENSION, PARENT_MB, USABLE_FRACTION, estimate_mb

    sqd = {"samples_per_batch": 300, "solver": "solve_fermion"}
    small = diagonalize_mem_mb(sqd, {"executor": "process", "workers": 2})
    assert small == int((PARENT_MB + 2 * estimate_mb(600**2, "solve_fermion")) / USABLE_FRACTION + 0.5)
    big = diagonalize_mem_mb({**sqd, "samples_per_batch": 900}, {"executor": "process", "workers": 4})
    assert big == int((PARENT_MB + 4 * estimate_mb(1800**2, "solve_fermion")) / USABLE_FRACTION + 0.5) > small
    # A null cap is a fixed figure (never the machine's memory): it bounds the request too.
    huge = diagonalize_mem_mb({**sqd, "samples_per_batch": 5000}, {"executor": "process", "workers": 4})
    assert huge == int((PARENT_MB + 4 * estimate_mb(AUTO_MAX_DIMENSION, "solve_fermion")) / USABLE_FRACTION + 0.5)
    # A dimension cap bounds the request; the sequential path plans like the parallel one.
    capped = diagonalize_mem_mb({**sqd, "samples_per_batch": 5000, "max_dimension": 10**6}, {"workers": 4})
    assert capped < big
    assert diagonalize_mem_mb(sqd, {"executor": "sequential", "workers": 2}) == small


# sinfo --noheader --format='%P %G' as SLURM prints it: partition (* = default), node gres.
SINFO_CPU_ONLY = "debug* (null)\n"
SINFO_MIXED = "cpu* (null)\ngpu gpu:a100:4(S:0-1)\ngpu (null)\nbig gpu:h100:8,tmpdisk:100\n"


def test_partition_gpu_detection_reads_sinfo():
    from hinqs.loop.workflow_support import partition_has_gpus

    assert partition_has_gpus(SINFO_CPU_ONLY, None) is False
    assert partition_has_gpus(SINFO_MIXED, None) is False  # the default partition is cpu
    assert partition_has_gpus(SINFO_MIXED, "gpu") is True
    assert partition_has_gpus(SINFO_MIXED, "big") is True
    assert partition_has_gpus(SINFO_MIXED, "nosuch") is None


def test_gpu_request_by_device_and_site_setting():
    import pytest

    from hinqs.errors import InputError
    from hinqs.loop.workflow_support import gpus_per_nqs_job

    assert gpus_per_nqs_job("cpu", {"HINQS_SLURM_GPUS": "1"}) == 0
    assert gpus_per_nqs_job("cuda", {}) == 1
    assert gpus_per_nqs_job("auto", {"HINQS_SLURM_GPUS": "1"}) == 1
    assert gpus_per_nqs_job("cuda", {"HINQS_SLURM_GPUS": "0"}) == 0
    with pytest.raises(InputError, match="HINQS_SLURM_GPUS"):
        gpus_per_nqs_job("auto", {"HINQS_SLURM_GPUS": "two"})


def test_the_diagonalize_rule_asks_a_gpu_per_rank_for_the_torch_kernel():
    """The shipped defaults' sqd and parallel sections, with the device and executor varied."""
    from hinqs.config import schema_defaults
    from hinqs.loop.workflow_support import gpus_per_diagonalize_job

    config = schema_defaults()
    sqd, parallel = config["sqd"], {**config["parallel"], "workers": 4}
    assert gpus_per_diagonalize_job(sqd, parallel, {}) == 0  # sqd.device cpu: the numba kernel
    cuda = {**sqd, "device": "cuda"}
    assert gpus_per_diagonalize_job(cuda, {**parallel, "executor": "process"}, {}) == 1  # the workers share it
    assert gpus_per_diagonalize_job(cuda, {**parallel, "executor": "distributed"}, {}) == 4
    assert gpus_per_diagonalize_job(cuda, {**parallel, "executor": "mpi"}, {}) == 4
    assert gpus_per_diagonalize_job(cuda, {**parallel, "executor": "distributed"}, {"HINQS_SLURM_GPUS": "0"}) == 0
    assert gpus_per_diagonalize_job({**cuda, "solver": "solve_fermion"}, parallel, {}) == 0


def test_the_pt2_rule_asks_a_gpu_per_rank_for_pt2_device():
    from hinqs.config import schema_defaults
    from hinqs.loop.workflow_support import gpus_per_pt2_job

    config = schema_defaults()
    pt2, parallel = config["pt2"], {**config["parallel"], "workers": 3}
    assert gpus_per_pt2_job(pt2, parallel, {}) == 0  # pt2.device cpu: the numba rows
    cuda = {**pt2, "device": "cuda"}
    assert gpus_per_pt2_job(cuda, {**parallel, "executor": "process"}, {}) == 1  # one process sums the rows
    assert gpus_per_pt2_job(cuda, {**parallel, "executor": "distributed"}, {}) == 3  # a rank's share each
    assert gpus_per_pt2_job({**pt2, "device": "auto"}, parallel, {"HINQS_SLURM_GPUS": "0"}) == 0


@pytest.mark.parametrize("name", ["config.yaml", "n2_ccpvdz.yaml"])
def test_every_memory_request_of_a_shipped_config_fits_a_16_gb_node(name):
    """The scheduler is asked for what the step can use, not for a figure from an unrelated
    setting: the PT2 step streams its sum, so pt2.max_dimension (1e10 by default) must not
    reach its request (it once asked SLURM for 400 GB)."""
    from hinqs.config import load_config
    from hinqs.loop.workflow_support import diagonalize_mem_mb, pt2_mem_mb

    config = load_config(REPO / "config" / name)
    pt2 = pt2_mem_mb(config["sqd"], config["parallel"])
    diag = diagonalize_mem_mb(config["sqd"], config["parallel"])
    assert 0 < pt2 <= diag < 16_000
    # Larger batches ask for more; the PT2 setting does not move it.
    bigger = pt2_mem_mb({**config["sqd"], "samples_per_batch": 2000, "max_dimension": 16_000_000}, config["parallel"])
    assert bigger > pt2_mem_mb({**config["sqd"], "samples_per_batch": 200}, config["parallel"])


def test_a_spread_batch_is_requested_per_rank_share():
    """The distributed executor's ranks each hold 1/P of a batch's vectors and the halo: the
    request is P such shares, far below P whole batches (one memory model, dimension.estimate_mb)."""
    from hinqs.loop.workflow_support import diagonalize_mem_mb
    from hinqs.sqd.dimension import PARENT_MB, USABLE_FRACTION, estimate_mb

    sqd = {"max_dimension": 64_000_000, "solver": "direct", "samples_per_batch": 10_000}
    spread = diagonalize_mem_mb(sqd, {"executor": "distributed", "workers": 16})
    assert spread == int((PARENT_MB + 16 * estimate_mb(64_000_000, "direct", ranks=16)) / USABLE_FRACTION + 0.5)
    pooled = diagonalize_mem_mb(sqd, {"executor": "process", "workers": 16})
    assert spread < pooled / 5
    assert estimate_mb(64_000_000, "direct", ranks=16) < estimate_mb(64_000_000, "direct") / 5


def test_a_spread_batch_asks_memory_per_cpu_and_the_rest_per_node():
    """diagonalize's mem_mb_per_cpu: a rank's share (and rank 0's own data) over its CPUs, read
    back by the step as SLURM_MEM_PER_CPU x CPUs x 0.8; 0 (ask mem_mb) for the other executors."""
    from hinqs.loop.workflow_support import diagonalize_mem_per_cpu
    from hinqs.sqd.dimension import PARENT_MB, USABLE_FRACTION, estimate_mb, rank_memory_mb

    sqd = {"max_dimension": 64_000_000, "solver": "direct", "samples_per_batch": 10_000}
    par = {"executor": "distributed", "workers": 16, "threads_per_worker": 4}
    per_cpu = diagonalize_mem_per_cpu(sqd, par)
    granted, _ = rank_memory_mb(None, 16, 4, True, {"SLURM_MEM_PER_CPU": str(per_cpu), "SLURM_CPUS_PER_TASK": "4"})
    need = estimate_mb(64_000_000, "direct", ranks=16)
    assert need <= granted < need + 4 / USABLE_FRACTION
    assert per_cpu * 4 * 16 < (PARENT_MB + 16 * estimate_mb(64_000_000, "direct")) / 5  # far below whole copies
    assert diagonalize_mem_per_cpu(sqd, {**par, "executor": "process"}) == 0
