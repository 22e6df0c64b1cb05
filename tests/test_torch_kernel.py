"""The torch product-space kernel against the numba one, on torch's CPU (no GPU needed).

Real integrals (hinqs' own prepare path, as in test_kernel.py): N2/6-31G with two 1s frozen
(closed shell, frozen core), NH triplet (open shell, one frozen), LiH (no frozen core).
Random coefficient vectors over random subspaces of singles and doubles of HF.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from sqd_helpers import build_hamiltonian, kernel_hamiltonians, random_strings, solver_settings

from hinqs.errors import InputError
from hinqs.kernel import ProductHamiltonian
from hinqs.kernel.device_memory import check_device_fits, device_need
from hinqs.kernel.torch_kernel import TorchProductHamiltonian
from hinqs.sqd.device_check import resolve_device
from hinqs.sqd.registry import TORCH_CPU
from hinqs.sqd.solvers import solve_direct

pytestmark = pytest.mark.usefixtures("one_solver_thread", "one_torch_thread")


@pytest.fixture(scope="module")
def hamiltonians(tmp_path_factory):
    return kernel_hamiltonians(tmp_path_factory.mktemp("torch_kernel"))


def _strings(ham, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = random_strings(ham.norb, ham.nelec[0], n, rng).astype(np.int64)
    b = random_strings(ham.norb, ham.nelec[1], n - 7, rng).astype(np.int64)
    return a, b


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    """Max abs difference relative to max |want| below 1e-12."""
    return got.shape == want.shape and np.abs(got - want).max() <= 1e-12 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("name", ["n2", "nh", "lih"])
@pytest.mark.parametrize("work_mb", [1024.0, 0.02])
def test_square_product_equals_the_numba_kernel(hamiltonians, name, work_mb):
    """H C and S^2 C, in one chunk and in many (a small work budget)."""
    ham = hamiltonians[name]
    strs = _strings(ham, 60, 1)
    c = np.random.default_rng(2).standard_normal((len(strs[0]), len(strs[1])))
    cpu = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, *strs)
    op = TorchProductHamiltonian(cpu, ham.eri, "cpu", work_mb=work_mb)
    assert work_mb > 1 or op.chunks > 1
    assert _close(op.apply(c), cpu.apply(c))
    assert _close(op.apply_spin_square(c), cpu.apply_spin_square(c))
    assert np.array_equal(op.diagonal(), cpu.diagonal())


@pytest.mark.parametrize("name", ["n2", "nh"])
def test_rectangular_product_equals_the_numba_kernel(hamiltonians, name):
    """Sources a subset of the targets on both spins: the same-spin parts reach only source columns/rows."""
    ham = hamiltonians[name]
    big_a, big_b = _strings(ham, 50, 3)
    rng = np.random.default_rng(4)
    sa = np.sort(rng.choice(big_a, len(big_a) // 2, replace=False))
    sb = np.sort(rng.choice(big_b, len(big_b) // 2, replace=False))
    c = rng.standard_normal((len(sa), len(sb)))
    cpu = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, sa, sb, big_a, big_b)
    op = TorchProductHamiltonian(cpu, ham.eri, "cpu", work_mb=0.05)
    assert op.shape == (len(big_a), len(big_b)) and op.source_shape == c.shape
    assert _close(op.apply(c), cpu.apply(c))
    assert _close(op.apply_spin_square(c), cpu.apply_spin_square(c))


def test_tensor_interface_and_repeat_bits(hamiltonians):
    """The tensor variant is what apply computes, and two applications give the same bits."""
    import torch

    ham = hamiltonians["n2"]
    strs = _strings(ham, 80, 5)
    op = TorchProductHamiltonian.from_integrals(ham.hcore, ham.eri, ham.nelec, *strs, "cpu", work_mb=0.1)
    c = np.random.default_rng(6).standard_normal(op.source_shape)
    sigma = op.apply_tensor(torch.from_numpy(c))
    assert isinstance(sigma, torch.Tensor) and sigma.dtype == torch.float64
    assert np.array_equal(sigma.numpy(), op.apply(c))
    assert np.array_equal(op.apply(c), op.apply(c))
    with pytest.raises(ValueError, match="float64 of shape"):
        op.apply_tensor(torch.zeros(3, 3))


@pytest.mark.parametrize("name,spin_sq", [("n2", None), ("nh", 2.0), ("lih", 0.0)])
def test_direct_solve_on_torch_equals_the_numba_solve(hamiltonians, name, spin_sq):
    """The torch kernel under the same Davidson: energies equal to 1e-10 Ha, spin penalty included."""
    ham = hamiltonians[name]
    strs = _strings(ham, 40, 7)
    settings = solver_settings(solver="direct", conv_tol=1e-12, spin_sq=spin_sq)
    numba = solve_direct(*strs, ham.hcore, ham.eri, ham.nelec, settings)
    torch_cpu = solve_direct(*strs, ham.hcore, ham.eri, ham.nelec, replace(settings, device=TORCH_CPU))
    assert numba.converged and torch_cpu.converged
    assert abs(numba.energy - torch_cpu.energy) < 1e-10
    assert abs(numba.spin_sq - torch_cpu.spin_sq) < 1e-8


def test_device_estimate_bounds_what_the_kernel_holds(hamiltonians):
    """The estimate from shapes alone is an upper bound on the built operator's own tables and chunks."""
    for name in ("n2", "nh"):
        ham = hamiltonians[name]
        strs = _strings(ham, 60, 8)
        for work_mb in (1024.0, 0.05):
            op = TorchProductHamiltonian.from_integrals(ham.hcore, ham.eri, ham.nelec, *strs, "cpu", work_mb=work_mb)
            assert op.planned_mb() <= op.estimated_mb()


def test_a_batch_that_does_not_fit_the_device_is_refused_in_one_line():
    """26 orbitals, (5, 5), 1,500 strings per spin against a stated 4 GB and 80 GB of free device memory."""
    shape = (1500, 1500)
    need = device_need(shape, shape, 26, (5, 5), 1024.0)
    assert 1024.0 < need.total_mb < 4096.0 * 0.9  # tables, vectors and one chunk
    check_device_fits(shape, need, 4096.0, "cuda:0", "stated")
    big = (20000, 20000)
    need = device_need(big, big, 26, (5, 5), 1024.0)
    check_device_fits(big, need, 80_000.0, "cuda:0", "stated")
    with pytest.raises(InputError) as refused:
        check_device_fits(big, need, 4096.0, "cuda:0", "stated")
    line = str(refused.value)
    assert "\n" not in line and "20000 x 20000 = 400,000,000 determinants" in line
    assert f"about {need.total_mb:,.0f} MB" in line and "4,096 MB free (stated" in line


def test_device_names():
    import torch

    assert resolve_device("cpu") is None
    assert resolve_device(TORCH_CPU) == torch.device("cpu")
    with pytest.raises(InputError, match=r"unknown sqd\.device"):
        resolve_device("tpu")
    with pytest.raises(InputError, match=r"unknown sqd\.device"):
        solver_settings(device="gpu")
    with pytest.raises(InputError, match=r"needs sqd\.solver: direct"):
        solver_settings(solver="lean", device="cuda")
    if not torch.cuda.is_available():
        assert resolve_device("auto") is None
        with pytest.raises(InputError, match="no CUDA GPU"):
            resolve_device("cuda")
    else:  # the ranks of a node take its GPUs in turn; an explicit index is kept
        count = torch.cuda.device_count()
        assert resolve_device("cuda", count + 1) == torch.device("cuda", 1 % count)
        assert resolve_device("cuda:0", 1) == torch.device("cuda:0")


def test_a_rank_s_place_on_its_node_comes_from_its_launcher():
    from hinqs.sqd.device_check import node_rank

    assert node_rank({"OMPI_COMM_WORLD_LOCAL_RANK": "3", "SLURM_LOCALID": "0"}) == 3  # mpiexec inside srun
    assert node_rank({"MPI_LOCALRANKID": "2"}) == 2
    assert node_rank({"SLURM_LOCALID": "1"}) == 1
    assert node_rank({"SLURM_LOCALID": "n/a"}) == 0 and node_rank({}) == 0


def test_the_numba_kernel_keeps_its_fingerprints():
    """sqd.device: cpu hashes as before the setting existed; another device is another result."""
    from hinqs.sqd.store import fingerprint

    cpu = solver_settings()
    assert cpu.device == "cpu"
    old = {k: v for k, v in cpu.as_dict().items() if k != "device"}
    key = {"format": "hinqs-sqd-batch/1", "integrals": None, "ecore": None, "nelec": None, "batch": "x", "solver": old}
    assert fingerprint({}, "x", cpu, None) == hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    assert fingerprint({}, "x", solver_settings(device="auto"), None) != fingerprint({}, "x", cpu, None)


def test_a_cpu_worker_never_imports_torch(hamiltonians, tmp_path):
    """A direct solve with sqd.device: cpu, as a worker runs it, leaves torch unloaded."""
    ham_dir = build_hamiltonian("lih", tmp_path / "lih")
    script = f"""
import sys
import numpy as np
from hinqs.sqd.task import BatchTask, run_task
from hinqs.loop.settings import RunSettings
strs = np.array([3, 5, 6, 9, 10, 12], np.uint64)
out = run_task(BatchTask({str(ham_dir)!r}, 0, strs, strs, (2, 2), RunSettings.defaults().sqd.solver))
assert out.ok, out.error
print("torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_the_step_refuses_a_batch_the_gpu_cannot_hold():
    """Real batches of a sampled pool against a stated GPU capacity, shared by the process workers."""
    from sqd_helpers import make_subspace

    from hinqs.sqd.batches import canonical_subspace, form_batches
    from hinqs.sqd.device_check import check_device_batches, check_step_device

    norb, nelec = 26, (5, 5)
    alpha, beta, counts = make_subspace(norb, nelec, 400, n_strings=300)
    subspace = canonical_subspace(alpha, beta, counts)
    batches = form_batches(subspace, nelec, n_batches=2, samples_per_batch=300, seed=1, iteration=0)
    largest = max(batches, key=lambda b: b.n_determinants)
    need = device_need(largest.shape, largest.shape, norb, nelec, 1024.0).total_mb
    check_device_batches(batches, norb, nelec, 2 * need, "cuda:0", 1, "stated")
    with pytest.raises(InputError) as refused:
        check_device_batches(batches, norb, nelec, 2 * need, "cuda:0", 4, "stated")
    line = str(refused.value)
    assert "\n" not in line and line.startswith("batch ") and "(stated, shared by 4 worker(s)" in line
    check_step_device(batches, solver_settings(device="cpu"), norb, nelec, 4)  # the numba kernel: nothing to check
    # Spread over 4 ranks with a GPU each, a rank holds a quarter of the rows (and a halo of all):
    # a GPU too small for the whole batch holds a rank's share.
    from hinqs.kernel.device_memory import USABLE_FRACTION

    quarter = device_need(largest.shape, (-(-largest.shape[0] // 4), largest.shape[1]), norb, nelec, 1024.0).total_mb
    assert quarter < need
    free = (quarter + need) / 2 / USABLE_FRACTION
    check_device_batches(batches, norb, nelec, free, "cuda:0", 4, "stated", spread=True)
    with pytest.raises(InputError):
        check_device_batches(batches, norb, nelec, free, "cuda:0", 1, "stated")
