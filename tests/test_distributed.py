"""One batch spread over MPI ranks (``hinqs.sqd.distributed``, ``parallel.executor: distributed``).

Real chemistry: PySCF integrals of N2/6-31G (closed shell, 16 orbitals, (5,5), a 140 x 140
batch, from the lowest diagonal) and triplet CH2/6-31G (open shell, 12 orbitals, (4,2), its
whole 495 x 66 space, solved with the spin penalty from a noisy guess that the solve
spin-projects first, so that S^2's row blocks, the guess's scatter and the projection are
exercised). Under ``mpiexec -n 2`` and ``-n 3`` every rank holds its rows of the vectors:
the rows gathered from the ranks must be ``ProductHamiltonian.apply``'s bits, and the spread
solve must give the bits of one rank and of ``solve_direct`` in this process, with less
memory per rank than one process; the ``hinqs diagonalize`` step with the distributed
executor must write what the sequential executor writes.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqd_helpers import build_hamiltonian, computed_mask, mpiexec, random_strings, solver_settings, system_with_subspace

from hinqs.io.hamiltonian import load_hamiltonian, write_hamiltonian
from hinqs.kernel import ProductHamiltonian
from hinqs.kernel.block import RowBlock
from hinqs.sqd.distributed import split_rows
from hinqs.sqd.solvers import solve_direct

pytestmark = [pytest.mark.mpi, pytest.mark.usefixtures("one_solver_thread")]

CH2_TRIPLET = {
    "name": "ch2",
    "geometry": "C 0 0 0; H 0 0.9929 0.6093; H 0 -0.9929 0.6093",
    "basis": "6-31g",
    "spin": 2,
    "frozen_core": 1,
    "orbitals": "hf",
}


def _launcher() -> str:
    launcher = mpiexec()
    if launcher is None:
        pytest.skip("mpi4py or mpiexec is not installed (pip install hinqs[mpi])")
    return launcher


def _ch2(out_dir: Path) -> Path:
    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.config import complete_system

    ints, _ = integrals_from_geometry(complete_system(CH2_TRIPLET))
    return write_hamiltonian(out_dir, ints.hcore, ints.eri, ints.nelec, ints.ecore, {"system": "ch2"})


def _all_strings(norb: int, nocc: int) -> np.ndarray:
    return np.array(sorted(sum(1 << i for i in occ) for occ in itertools.combinations(range(norb), nocc)), np.int64)


@pytest.fixture(scope="module", params=["n2_closed", "ch2_triplet"])
def case(request, tmp_path_factory) -> dict:
    """A Hamiltonian folder, a batch's strings, a coefficient matrix, the penalty and the guess."""
    root = tmp_path_factory.mktemp(request.param)
    rng = np.random.default_rng(11)
    if request.param == "n2_closed":
        ham = load_hamiltonian(ham_dir := build_hamiltonian("n2", root / "ham"))
        strs_a = random_strings(ham.norb, ham.nelec[0], 140, rng).astype(np.int64)
        strs_b, spin_sq, guess = strs_a, None, np.zeros(0)
    else:  # the whole space: the solve is CH2's FCI triplet
        ham = load_hamiltonian(ham_dir := _ch2(root / "ham"))
        strs_a, strs_b = _all_strings(ham.norb, ham.nelec[0]), _all_strings(ham.norb, ham.nelec[1])
        op = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, strs_a, strs_b)
        guess = rng.standard_normal((len(strs_a), len(strs_b)))
        guess *= 0.05 / np.linalg.norm(guess)  # the lowest diagonal, with noise of norm 0.05
        guess.flat[np.argmin(op.diagonal())] += 1.0
        spin_sq = 2.0
    c = rng.standard_normal((len(strs_a), len(strs_b)))
    path = root / "case.npz"
    np.savez(path, strs_a=strs_a, strs_b=strs_b, c=c, spin_sq=np.nan if spin_sq is None else spin_sq, guess=guess,
             max_cycle=200)  # fmt: skip
    return {"ham_dir": ham_dir, "ham": ham, "strs_a": strs_a, "strs_b": strs_b, "c": c, "spin_sq": spin_sq,
            "guess": guess if guess.size else None, "path": path, "root": root, "name": request.param}  # fmt: skip


@pytest.fixture(scope="module", params=[2, 3])
def ranks(case, request) -> dict:
    """What rank 0 of ``mpiexec -n N tests/mpi_spread.py`` got (written only if every rank agrees)."""
    out = case["root"] / f"ranks_{request.param}.npz"
    command = [_launcher(), "-n", str(request.param), sys.executable, str(Path(__file__).with_name("mpi_spread.py"))]
    proc = subprocess.run(
        [*command, str(case["ham_dir"]), str(case["path"]), str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.exists(), "the ranks did not get the same bits"
    return dict(np.load(out))


@pytest.fixture(scope="module")
def direct(case):
    """The one-process ``direct`` solve of the case."""
    ham = case["ham"]
    settings = solver_settings(spin_sq=case["spin_sq"])
    return solve_direct(case["strs_a"], case["strs_b"], ham.hcore, ham.eri, ham.nelec, settings, case["guess"])


def test_rows_from_the_ranks_are_the_whole_product_bit_for_bit(case, ranks):
    ham = case["ham"]
    op = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, case["strs_a"], case["strs_b"])
    bounds = ranks["bounds"]
    assert len(bounds) == ranks["ranks"] + 1 and np.all(np.diff(bounds) > 0)  # every rank holds rows
    assert np.array_equal(ranks["sigma"], op.apply(case["c"]))
    assert np.array_equal(ranks["s2c"], op.apply_spin_square(case["c"]))


def test_mirrored_rows_from_the_ranks_are_the_one_process_mirror_bit_for_bit(case, ranks):
    """Where both spins share their strings (the closed shell), each rank computes its rows'
    windows of half the columns and receives the rest from the other ranks: the computed half
    of the whole product bit for bit, mirrored; elsewhere (the triplet) nothing is mirrored."""
    from hinqs.sqd.solvers import WholeOperator

    ham = case["ham"]
    op = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, case["strs_a"], case["strs_b"])
    c = case["c"]
    assert bool(ranks["mirrored"]) == (case["name"] == "n2_closed") == op.mirrored_spins
    if not op.mirrored_spins:
        assert np.array_equal(ranks["sigma_mirrored"], op.apply(c))
        return
    c_sym = c + c.T
    whole = WholeOperator(op, mirrored=True).apply(c_sym)
    assert np.array_equal(ranks["sigma_mirrored"], whole) and np.array_equal(whole, whole.T)
    full = op.apply(c_sym)
    done = computed_mask(len(c))
    assert np.array_equal(whole[done], full[done])  # the same sums where computed
    assert np.array_equal(done | done.T, np.ones_like(done)) and not np.any(done & done.T & ~np.eye(len(c), dtype=bool))
    assert np.max(np.abs(whole - full)) < 1e-12 * np.max(np.abs(full))  # the lower: another order's rounding


def test_spread_solve_is_one_rank_and_solve_direct_bit_for_bit(case, ranks, direct):
    assert direct.converged and bool(ranks["converged"])
    assert ranks["energy"] == direct.energy == ranks["energy_alone"]
    assert np.array_equal(ranks["amplitudes"], direct.state.amplitudes)
    assert np.array_equal(ranks["amplitudes_alone"], direct.state.amplitudes)
    assert np.array_equal(ranks["occ_a"], direct.state.occ_a) and np.array_equal(ranks["occ_b"], direct.state.occ_b)
    assert ranks["spin"] == direct.spin_sq and ranks["residual"] == direct.residual_norm


def test_rows_on_a_torch_device_from_the_ranks_are_the_product_to_rounding(case, ranks):
    """Each rank's rows by the torch kernel (torch's CPU here, a GPU per rank on a cluster) from
    the same exchange of halo rows: every column computed (never mirrored), the whole product
    and S^2 product to float rounding."""
    ham = case["ham"]
    op = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, case["strs_a"], case["strs_b"])
    c = case["c"]
    assert not ranks["torch_mirrored"]
    for got, want in ((ranks["sigma_torch"], op.apply(c)), (ranks["s2c_torch"], op.apply_spin_square(c))):
        assert got.shape == want.shape and np.max(np.abs(got - want)) < 1e-12 * np.max(np.abs(want))


def test_a_spread_solve_on_a_torch_device_is_the_numba_solve_to_rounding(case, ranks, direct):
    assert abs(float(ranks["energy_torch"]) - direct.energy) < 1e-10
    overlap = abs(np.vdot(ranks["amplitudes_torch"], direct.state.amplitudes))
    assert overlap > 1 - 1e-9


def test_spread_solve_agrees_with_pyscf(case, direct):
    """The closed shell against PySCF's selected-CI solve of the batch; the triplet, a whole space,
    against PySCF's FCI."""
    from hinqs.sqd.solvers import solve_with_solve_fermion

    ham = case["ham"]
    if case["name"] == "ch2_triplet":
        from hinqs.chem.fci import fci_energy

        assert abs(direct.energy - fci_energy(ham.hcore, ham.eri, ham.nelec)) < 1e-9
        assert abs(direct.spin_sq - 2.0) < 1e-7
    else:
        ref = solve_with_solve_fermion(case["strs_a"], case["strs_b"], ham.hcore, ham.eri, ham.nelec, solver_settings())
        assert abs(direct.energy - ref.energy) < 1e-9


def test_a_rank_holds_less_than_one_process(case, ranks):
    """Peak bytes numpy allocated during the solve, per rank (tracemalloc): each rank's, below one
    process's, and the largest at 2 ranks at most 0.75 of it (a halo and the tables stay whole)."""
    peaks, alone = ranks["peaks"], float(ranks["peak_alone"])
    assert np.all(peaks < alone), (peaks, alone)
    if ranks["ranks"] == 2:
        assert peaks.max() <= 0.75 * alone, (peaks, alone)
    assert np.all(ranks["halos"] < len(case["strs_a"]))


def test_rows_of_any_block_are_those_of_the_product(case):
    """In one process: every block of a split (any number of parts) has the product's bits, from
    the whole matrix (``apply_rows``) and from its own rows and halo alone (``RowBlock``)."""
    ham = case["ham"]
    op = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, case["strs_a"], case["strs_b"])
    whole, spin, diagonal = op.apply(case["c"]), op.apply_spin_square(case["c"]), op.diagonal()
    bounds = split_rows(op.row_costs(), 3)
    assert bounds[0] == 0 and bounds[-1] == len(case["strs_a"]) and np.all(np.diff(bounds) >= 0)
    for lo, hi in itertools.pairwise(bounds):
        assert np.array_equal(op.apply_rows(case["c"], lo, hi), whole[lo:hi])
        assert np.array_equal(op.apply_spin_square_rows(case["c"], lo, hi), spin[lo:hi])
        block = RowBlock(op, lo, hi)
        compact = block.compact(case["c"])
        assert np.array_equal(block.apply(compact), whole[lo:hi])
        assert np.array_equal(block.apply_spin_square(compact), spin[lo:hi])
        assert np.array_equal(block.diagonal(), diagonal[lo:hi])
    with pytest.raises(ValueError, match="not within"):
        op.apply_rows(case["c"], 5, len(case["strs_a"]) + 1)


def test_split_rows_balances_cost_and_is_deterministic():
    costs = np.array([5.0, 1, 1, 1, 1, 1, 5, 1])
    assert split_rows(costs, 2).tolist() == [0, 4, 8]  # 8 + 8
    assert split_rows(costs, 1).tolist() == [0, 8]
    assert split_rows(np.ones(2), 4).tolist() == [0, 1, 1, 2, 2]  # more ranks than rows: empty blocks


# The diagonalize step under the launcher: the same files as the sequential executor.
STEP_ARGS = ("--batches", "2", "--samples-per-batch", "200", "--seed", "2024", "--iteration", "1",
             "--threads-per-worker", "1", "--retries", "0")  # fmt: skip


@pytest.fixture(scope="module")
def n2_subspace(tmp_path_factory) -> dict:
    return system_with_subspace(tmp_path_factory.mktemp("n2_subspace"), "n2", 800, 60)


def _step(n2_subspace: dict, out: Path, *extra: str, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    command = [*(launcher or []), sys.executable, *(["-m", "mpi4py"] if launcher else []), "-m", "hinqs"]
    files = ["--hamiltonian", str(n2_subspace["ham"]), "--subspace", str(n2_subspace["subspace"])]
    args = ["diagonalize", *files, "--out", str(out)]
    return subprocess.run([*command, *args, *STEP_ARGS, *extra], capture_output=True, text=True, timeout=180)


def test_diagonalize_step_on_two_ranks_writes_the_sequential_result(n2_subspace, tmp_path):
    launcher = [_launcher(), "-n", "2"]
    sequential = _step(n2_subspace, tmp_path / "sequential", "--executor", "sequential")
    assert sequential.returncode == 0, sequential.stderr[-2000:]
    spread = _step(n2_subspace, tmp_path / "distributed", "--executor", "distributed", launcher=launcher)
    assert spread.returncode == 0, spread.stderr[-2000:]
    assert spread.stdout.count("E = ") == 1  # rank 0 alone reports
    ref = json.loads((tmp_path / "sequential" / "result.json").read_text())
    got = json.loads((tmp_path / "distributed" / "result.json").read_text())
    assert got["executor"]["executor"] == "distributed" and got["executor"]["workers"] == 2
    assert len({w["pid"] for w in got["executor"]["worker_info"]}) == 2
    assert got["batch_energies"] == ref["batch_energies"] and got["energy"] == ref["energy"]
    assert got["capping"]["memory"]["holder"] == "rank"
    with np.load(tmp_path / "sequential" / "state.npz") as a, np.load(tmp_path / "distributed" / "state.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_a_warm_start_on_two_ranks_is_the_sequential_one(n2_subspace, tmp_path):
    """With a teacher state the batches start from it (rank 0 reads it, the ranks get their rows):
    the same files as the sequential executor's warm start."""
    first = _step(n2_subspace, tmp_path / "first", "--executor", "sequential")
    assert first.returncode == 0, first.stderr[-2000:]
    teacher = ("--teacher", str(tmp_path / "first" / "state.npz"), "--seed", "7")
    sequential = _step(n2_subspace, tmp_path / "sequential", "--executor", "sequential", *teacher)
    spread = _step(n2_subspace, tmp_path / "spread", "--executor", "distributed", *teacher,
                   launcher=[_launcher(), "-n", "2"])  # fmt: skip
    assert sequential.returncode == 0 and spread.returncode == 0, spread.stderr[-2000:]
    ref = json.loads((tmp_path / "sequential" / "result.json").read_text())
    got = json.loads((tmp_path / "spread" / "result.json").read_text())
    assert got["batch_energies"] == ref["batch_energies"]
    with np.load(tmp_path / "sequential" / "state.npz") as a, np.load(tmp_path / "spread" / "state.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_a_failed_or_timed_out_attempt_fails_on_every_rank_and_is_retried(n2_subspace, tmp_path):
    """Batch 0 raises on its first attempt; batch 1's first attempt passes batch_timeout (rank 0's
    clock, checked at the first product). Both are retried on both ranks and end as sequential."""
    import os

    launcher = [_launcher(), "-n", "2"]
    env = {**os.environ, "HINQS_FAULT_INJECT": "batch=0@1:raise,batch=1@1:sleep=4"}
    command = [*launcher, sys.executable, "-m", "mpi4py", "-m", "hinqs", "diagonalize", "--hamiltonian",
               str(n2_subspace["ham"]), "--subspace", str(n2_subspace["subspace"]), "--out", str(tmp_path / "d"),
               *STEP_ARGS[:-2],
               "--retries", "1", "--batch-timeout", "3", "--executor", "distributed"]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sequential = _step(n2_subspace, tmp_path / "s", "--executor", "sequential")
    assert sequential.returncode == 0, sequential.stderr[-2000:]
    got = json.loads((tmp_path / "d" / "result.json").read_text())
    ref = json.loads((tmp_path / "s" / "result.json").read_text())
    assert got["batch_energies"] == ref["batch_energies"] and got["n_ok"] == 2
    warnings = {b["index"]: " ".join(b["warnings"]) for b in got["batches"]}
    assert "attempt 1 failed" in warnings[0] and "InjectedFault" in warnings[0]
    assert "attempt 1 failed: exceeded batch_timeout=3 s" in warnings[1]


def test_a_batch_larger_than_a_rank_s_memory_is_refused_in_one_line(n2_subspace, tmp_path):
    launcher = [_launcher(), "-n", "2"]
    proc = _step(n2_subspace, tmp_path, "--executor", "distributed", "--memory-mb", "800", "--max-dimension", "0",
                 launcher=launcher)  # fmt: skip
    assert proc.returncode != 0
    line = next(x for x in proc.stderr.splitlines() if "hinqs diagonalize: error" in x)
    assert "MB per rank with direct, but a rank has 100 MB (from sqd.memory_mb / 2 ranks" in line
    assert not (tmp_path / "result.json").exists() and not (tmp_path / "batches").exists()


def test_distributed_needs_the_direct_solver(n2_subspace, tmp_path):
    proc = _step(n2_subspace, tmp_path, "--executor", "distributed", "--solver", "lean")
    assert proc.returncode == 2 and "set sqd.solver: direct" in proc.stderr
