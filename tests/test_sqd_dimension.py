"""The product-space trap: batch dimension caps, memory refusal and the non-convergence flag.

Real integrals (LiH/STO-3G, N2/6-31G frozen core), real solves, the real ``hinqs`` command.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqd_helpers import parallel_settings, run_hinqs, solver_settings, system_with_subspace

from hinqs.errors import InputError
from hinqs.sqd import dimension
from hinqs.sqd.batches import canonical_subspace, cap_batch, form_batches
from hinqs.sqd.settings import SQDSettings
from hinqs.sqd.step import run_diagonalization


@pytest.fixture(scope="module")
def n2(tmp_path_factory):
    return system_with_subspace(tmp_path_factory.mktemp("n2dim"), "n2", 400, 60)


def settings(**top) -> SQDSettings:
    par = parallel_settings(executor="sequential", workers=2, retries=0)
    base = {"max_dimension": None, "memory_mb": None, "shrink_to_memory": False, "solver": solver_settings(), **top}
    return SQDSettings(seed=5, iteration=1, n_batches=2, samples_per_batch=150, parallel=par, **base)


def test_cap_keeps_the_heaviest_strings_deterministically(n2):
    pool = canonical_subspace(n2["alpha"], n2["beta"], n2["counts"])
    (batch,) = form_batches(pool, n2["nelec"], n_batches=1, samples_per_batch=150, seed=5, iteration=1)
    k = batch.shape[0]
    capped = cap_batch(batch, (k - 7) ** 2, n2["nelec"])
    again = cap_batch(batch, (k - 7) ** 2, n2["nelec"])
    assert capped.shape == (k - 7, k - 7)
    np.testing.assert_array_equal(capped.ci_strs_a, again.ci_strs_a)
    assert capped.cap["strings_dropped"] == [7, 7]
    assert capped.cap["dimension_before"] == k * k and capped.cap["dimension_after"] == (k - 7) ** 2
    # What was dropped weighs no more than anything kept.
    weights = dimension.string_weights(batch.ci_strs_a, [batch.alpha, batch.beta], batch.weights)
    kept = np.isin(batch.ci_strs_a, capped.ci_strs_a)
    assert weights[~kept].max() <= weights[kept].min()
    hf = np.uint64((1 << n2["nelec"][0]) - 1)
    assert hf in capped.ci_strs_a


def test_cap_shape_balances_open_shells():
    assert dimension.cap_shape(100, 10, 500, shared=False) == (50, 10)
    assert dimension.cap_shape(100, 100, 2500, shared=False) == (50, 50)
    assert dimension.cap_shape(40, 40, 2000, shared=True) == (40, 40)


def test_capped_step_records_the_cut_in_result_json(n2, tmp_path):
    full = run_diagonalization(n2["ham"], n2["alpha"], n2["beta"], n2["counts"], tmp_path / "full", settings())
    dims = [b["n_determinants"] for b in full.batches]
    cap = min(dims) // 2
    result = run_diagonalization(
        n2["ham"], n2["alpha"], n2["beta"], n2["counts"], tmp_path / "cap", settings(max_dimension=cap)
    )
    data = json.loads((tmp_path / "cap" / "result.json").read_text())
    assert data["capping"]["max_dimension"] == cap and data["capping"]["n_capped"] == 2
    for record, before in zip(data["batches"], dims, strict=True):
        assert record["cap"]["capped"] and record["cap"]["dimension_before"] == before
        assert record["n_determinants"] == record["cap"]["dimension_after"] <= cap
        assert sum(record["cap"]["strings_dropped"]) > 0
    assert result.energy >= full.energy - 1e-12  # a variational subspace of a subspace


def test_memory_budget_reads_slurm_first():
    env = {"SLURM_MEM_PER_NODE": "8000"}
    budget = dimension.memory_budget(4, env=env)
    assert budget.source.startswith("SLURM_MEM_PER_NODE")
    assert budget.per_worker_mb == pytest.approx((8000 * dimension.USABLE_FRACTION - dimension.PARENT_MB) / 4)
    per_cpu = dimension.memory_budget(2, env={"SLURM_MEM_PER_CPU": "1000", "SLURM_CPUS_PER_TASK": "4"})
    assert per_cpu.total_mb == pytest.approx(4000 * dimension.USABLE_FRACTION)
    assert dimension.memory_budget(2, memory_mb=1000.0).total_mb == 1000.0


def test_an_oversized_batch_is_refused_before_any_solve(n2, tmp_path):
    out = tmp_path / "out"
    # Capping off and too little memory for even one worker's baseline: refused, nothing written.
    with pytest.raises(InputError, match="determinants need about"):
        run_diagonalization(
            n2["ham"], n2["alpha"], n2["beta"], n2["counts"], out, settings(max_dimension=0, memory_mb=500.0)
        )
    assert not out.exists()
    proc = run_hinqs(
        "diagonalize", "--hamiltonian", str(n2["ham"]), "--subspace", str(n2["subspace"]), "--out", str(out),
        "--executor", "sequential", "--samples-per-batch", "150", "--max-dimension", "0", "--memory-mb", "500",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "determinants need about" in proc.stderr
    assert not out.exists()


def test_unconverged_davidson_is_flagged(n2, tmp_path):
    s = settings(solver=solver_settings(solver="lean", max_cycle=2))
    result = run_diagonalization(n2["ham"], n2["alpha"], n2["beta"], n2["counts"], tmp_path / "o", s)
    data = json.loads((tmp_path / "o" / "result.json").read_text())
    assert data["converged"] is False and data["residual_norm"] > 1e-5
    assert sorted(data["unconverged_batches"]) == [0, 1]
    assert all(b["converged"] is False for b in data["batches"])
    assert result.summary["converged"] is False
    proc = run_hinqs(
        "diagonalize", "--hamiltonian", str(n2["ham"]), "--subspace", str(n2["subspace"]), "--out", str(tmp_path / "c"),
        "--executor", "sequential", "--samples-per-batch", "150", "--max-cycle", "2", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "without converging" in proc.stderr


def test_a_teacher_keeps_the_strings_the_state_needs(n2, tmp_path):
    pool = canonical_subspace(n2["alpha"], n2["beta"], n2["counts"])
    (batch,) = form_batches(pool, n2["nelec"], n_batches=1, samples_per_batch=150, seed=5, iteration=1)
    k = batch.shape[0]
    by_counts = cap_batch(batch, (k - 10) ** 2, n2["nelec"])
    dropped = np.setdiff1d(batch.ci_strs_a, by_counts.ci_strs_a)
    # A teacher that puts weight on the strings the counts would drop: they must survive.
    amps = np.zeros((len(dropped), len(dropped)))
    np.fill_diagonal(amps, 1.0)
    state = tmp_path / "state.npz"
    np.savez(state, ci_strs_a=dropped, ci_strs_b=dropped, amplitudes=amps)
    teacher = dimension.teacher_marginals(state)
    capped = cap_batch(batch, (k - 10) ** 2, n2["nelec"], teacher)
    assert np.isin(dropped, capped.ci_strs_a).all() and capped.shape == by_counts.shape
    assert capped.cap["ranked_by"].startswith("max(teacher")
    # Through the step: the teacher is read only when a batch is capped, and the cut is recorded.
    s = settings(max_dimension=(k - 10) ** 2)
    result = run_diagonalization(n2["ham"], n2["alpha"], n2["beta"], n2["counts"], tmp_path / "o", s, teacher=state)
    assert all(b["cap"]["ranked_by"].startswith("max(teacher") for b in result.batches)


def _answer(out) -> dict:
    """result.json without what may differ between two runs of one config: timings, pids, the
    memory the machine had (recorded, never used to derive anything)."""
    data = json.loads((out / "result.json").read_text())
    for key in ("timing", "executor", "warnings"):
        data.pop(key)
    data["capping"].pop("memory")
    data["hamiltonian"].pop("dir")
    for record in data["batches"]:
        for key in ("seconds", "worker", "peak_rss_mb", "threads"):
            record.pop(key)
    return data


def _slurm_mb_for(per_worker_mb: float, workers: int) -> str:
    """The SLURM_MEM_PER_NODE that leaves each of ``workers`` workers ``per_worker_mb``."""
    return str((per_worker_mb * workers + dimension.PARENT_MB) / dimension.USABLE_FRACTION)


def test_the_same_config_diagonalises_the_same_batches_whatever_the_memory(n2, tmp_path, monkeypatch):
    """SLURM grants of 64 GB and 32 GB and psutil's figure give one answer; a grant too small for
    the batches is refused with one line before anything is written (the memory once set the cap,
    so the small grant silently diagonalised smaller batches)."""
    s = settings()
    results = []
    for name, grant in (("big", "64000"), ("half", "32000"), ("psutil", None)):
        if grant is None:
            monkeypatch.delenv("SLURM_MEM_PER_NODE", raising=False)
        else:
            monkeypatch.setenv("SLURM_MEM_PER_NODE", grant)
        run_diagonalization(n2["ham"], n2["alpha"], n2["beta"], n2["counts"], tmp_path / name, s)
        results.append(_answer(tmp_path / name))
    assert results[0] == results[1] == results[2]
    assert results[0]["capping"]["max_dimension"] == dimension.AUTO_MAX_DIMENSION
    assert results[0]["capping"]["n_capped"] == 0 and results[0]["capping"]["shrunk"] is None
    smallest = min(results[0]["dimensions"])
    need = dimension.estimate_mb(smallest // 2, s.solver.solver)
    monkeypatch.setenv("SLURM_MEM_PER_NODE", _slurm_mb_for(need, s.parallel.workers))
    out = tmp_path / "small"
    with pytest.raises(InputError) as refused:
        run_diagonalization(n2["ham"], n2["alpha"], n2["beta"], n2["counts"], out, s)
    message = str(refused.value)
    assert "\n" not in message and "determinants" in message and "need about" in message
    assert "from SLURM_MEM_PER_NODE x 0.8, 2 worker(s)" in message and "sqd.shrink_to_memory" in message
    assert not out.exists()


def test_shrinking_to_memory_is_opt_in_and_recorded(n2, tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_MEM_PER_NODE", raising=False)
    full = run_diagonalization(n2["ham"], n2["alpha"], n2["beta"], n2["counts"], tmp_path / "full", settings())
    dims = [b["n_determinants"] for b in full.batches]
    grant = _slurm_mb_for(dimension.estimate_mb(min(dims) // 2, settings().solver.solver), 2)
    monkeypatch.setenv("SLURM_MEM_PER_NODE", grant)
    result = run_diagonalization(
        n2["ham"], n2["alpha"], n2["beta"], n2["counts"], tmp_path / "cut", settings(shrink_to_memory=True)
    )
    shrunk = json.loads((tmp_path / "cut" / "result.json").read_text())["capping"]["shrunk"]
    assert shrunk["configured_max_dimension"] == dimension.AUTO_MAX_DIMENSION
    assert shrunk["batches"] == [0, 1] and shrunk["memory"]["source"] == "SLURM_MEM_PER_NODE x 0.8"
    assert 0 < shrunk["max_dimension"] <= min(dims) // 2
    for record, before in zip(result.batches, dims, strict=True):
        assert record["cap"]["capped"] and record["cap"]["dimension_before"] == before
        assert record["n_determinants"] <= shrunk["max_dimension"]
    assert result.energy >= full.energy - 1e-12
    proc = run_hinqs(
        "diagonalize", "--hamiltonian", str(n2["ham"]), "--subspace", str(n2["subspace"]), "--out", str(tmp_path / "c"),
        "--executor", "sequential", "--samples-per-batch", "150", "--batches", "2", "--seed", "5", "--iteration", "1",
        "--workers", "2", "--shrink-to-memory", "--quiet", env={"SLURM_MEM_PER_NODE": grant},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "c" / "result.json").read_text())["capping"]["shrunk"]["batches"] == [0, 1]


def test_a_batch_solved_from_another_guess_is_not_reused(n2, tmp_path):
    """The warm start's guess is part of the fingerprint: a rerun with another teacher solves again."""
    cold = run_diagonalization(n2["ham"], n2["alpha"], n2["beta"], n2["counts"], tmp_path / "cold", settings())
    state = np.load(cold.state_path)
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    np.savez(first, ci_strs_a=state["ci_strs_a"], ci_strs_b=state["ci_strs_b"], amplitudes=state["amplitudes"])
    other = state["amplitudes"].copy()
    other[0, 0] += 0.3
    other /= np.linalg.norm(other)
    np.savez(second, ci_strs_a=state["ci_strs_a"], ci_strs_b=state["ci_strs_b"], amplitudes=other)
    out = tmp_path / "warm"

    def run(teacher):
        return run_diagonalization(n2["ham"], n2["alpha"], n2["beta"], n2["counts"], out, settings(), teacher=teacher)

    assert run(first).summary["n_reused"] == 0
    assert run(first).summary["n_reused"] == 2  # same guess: reused
    copy = tmp_path / "renamed.npz"
    copy.write_bytes(first.read_bytes())
    assert run(copy).summary["n_reused"] == 2  # the content counts, not the file name
    assert run(second).summary["n_reused"] == 0  # another guess: solved again


def test_a_batch_too_large_for_one_process_fits_when_spread_over_ranks():
    """The same per-process memory refuses a batch in one worker and takes it over 8 ranks,
    each holding its rows of the vectors and the halo (dimension.estimate_mb with ranks)."""
    from types import SimpleNamespace

    batch = SimpleNamespace(index=0, n_determinants=20_000_000, shape=(4_472, 4_472))
    per_process = dimension.estimate_mb(batch.n_determinants, "direct", ranks=8) + 1
    assert per_process < dimension.estimate_mb(batch.n_determinants, "direct") / 3
    one = dimension.MemoryBudget(per_process, per_process, "test", 1)
    with pytest.raises(InputError, match="batch 0: 4472 x 4472 = 20,000,000 determinants need about"):
        dimension.check_fits([batch], "direct", one, None, False)
    ranks = dimension.MemoryBudget(8 * per_process, per_process, "test", 8, holder="rank")
    dimension.check_fits([batch], "direct", ranks, None, False)
    fits = dimension.dimension_for_mb(per_process, "direct", ranks=8)
    assert batch.n_determinants <= fits < batch.n_determinants * 1.01  # the 1 MB above: 22k more
