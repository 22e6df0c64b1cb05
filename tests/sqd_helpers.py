"""Small real systems and determinant subspaces for the SQD engine tests (no mocks of the chemistry).

Integrals are computed with PySCF (RHF/ROHF, no symmetry) and written with
``write_hamiltonian``. Pools mimic what an NQS proposes: a few hundred determinant pairs
built from a small vocabulary of low-excitation CI strings (many samples share strings),
so a batch of a few hundred sampled determinants spans a subspace of a few thousand
determinants: real solves that take a fraction of a second on one thread.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from hinqs.io.hamiltonian import write_hamiltonian

SYSTEMS = {
    # name: (atom, basis, 2S, frozen core orbitals)
    "h2": ("H 0 0 0; H 0 0 0.74", "sto-3g", 0, 0),
    "lih": ("Li 0 0 0; H 0 0 1.5949", "sto-3g", 0, 0),
    "n2": ("N 0 0 0; N 0 0 1.0977", "6-31g", 0, 2),
    "nh": ("N 0 0 0; H 0 0 1.036", "sto-3g", 2, 1),
}


def build_hamiltonian(name: str, out_dir: Path) -> Path:
    """Active-space integrals of a named system (frozen core) through hinqs' own prepare path."""
    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.config import complete_system
    from hinqs.steps.prepare import PREPARE_THREADS
    from hinqs.threads import thread_limit

    atom, basis, spin, frozen = SYSTEMS[name]
    system = {"name": name, "geometry": atom, "basis": basis, "spin": spin, "frozen_core": frozen, "orbitals": "hf"}
    # prepare's thread count: the same bits in every run (N2's degenerate pi orbitals otherwise
    # come out rotated with the BLAS threads a test process happens to have)
    with thread_limit(PREPARE_THREADS):
        ints, _ = integrals_from_geometry(complete_system(system))
    return write_hamiltonian(out_dir, ints.hcore, ints.eri, ints.nelec, ints.ecore, {"system": name})


def n2_sto3g(out_dir: Path, bond: float):
    """N2/STO-3G, two 1s frozen (8 orbitals, (5, 5), 3,136 determinants) at ``bond`` A, loaded."""
    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.config import complete_system
    from hinqs.io.hamiltonian import load_hamiltonian
    from hinqs.steps.prepare import PREPARE_THREADS
    from hinqs.threads import thread_limit

    system = {"name": "n2", "geometry": f"N 0 0 0; N 0 0 {bond}", "basis": "sto-3g", "frozen_core": 2, "orbitals": "hf"}
    # The thread count prepare uses: N2's pi pairs then come out in one rotation in every run.
    with thread_limit(PREPARE_THREADS):
        ints, _ = integrals_from_geometry(complete_system(system))
    return load_hamiltonian(write_hamiltonian(out_dir, ints.hcore, ints.eri, ints.nelec, ints.ecore, {}))


def random_strings(norb: int, nocc: int, n: int, rng: np.random.Generator, max_exc: int = 2) -> np.ndarray:
    """Up to ``n`` distinct CI strings, each the aufbau string with up to ``max_exc`` electrons moved."""
    found = {(1 << nocc) - 1}
    for _ in range(50 * n):
        if len(found) >= n:
            break
        n_exc = int(rng.integers(1, min(max_exc, nocc, norb - nocc) + 1))
        holes = rng.choice(nocc, size=n_exc, replace=False)
        parts = rng.choice(np.arange(nocc, norb), size=n_exc, replace=False)
        occ = (set(range(nocc)) - set(holes.tolist())) | set(parts.tolist())
        found.add(sum(1 << int(i) for i in occ))
    strings = sorted(found)
    return np.array(strings, dtype=np.uint64)


def make_subspace(
    norb: int, nelec: tuple[int, int], n_pairs: int, n_strings: int = 40, seed: int = 7, max_exc: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_pairs`` (alpha, beta) pairs over ``n_strings`` strings per spin, with counts; HF included."""
    rng = np.random.default_rng(seed)
    vocab_a = random_strings(norb, nelec[0], n_strings, rng, max_exc)
    vocab_b = vocab_a if nelec[0] == nelec[1] else random_strings(norb, nelec[1], n_strings, rng, max_exc)
    # Low indices (near the aufbau string) more often, as a trained NQS would propose them.
    weights_a = 1.0 / (1.0 + np.arange(len(vocab_a)))
    weights_b = 1.0 / (1.0 + np.arange(len(vocab_b)))
    ia = rng.choice(len(vocab_a), size=4 * n_pairs, p=weights_a / weights_a.sum())
    ib = rng.choice(len(vocab_b), size=4 * n_pairs, p=weights_b / weights_b.sum())
    pairs = np.unique(np.stack([ia, ib], axis=1), axis=0)[:n_pairs]
    pairs = np.concatenate([[[0, 0]], pairs])
    pairs = np.unique(pairs, axis=0)
    rng.shuffle(pairs)
    counts = rng.integers(1, 50, size=len(pairs))
    return vocab_a[pairs[:, 0]], vocab_b[pairs[:, 1]], counts


def run_hinqs(*args: str, env: dict[str, str] | None = None, timeout: float = 300, launcher: list[str] | None = None):
    """Run ``python -m hinqs ARGS`` in a fresh process (optionally behind a launcher such as mpiexec)."""
    full_env = {**os.environ, **(env or {})}
    command = [*(launcher or []), sys.executable, *(["-m", "mpi4py.futures"] if launcher else []), "-m", "hinqs"]
    return subprocess.run([*command, *args], env=full_env, capture_output=True, text=True, timeout=timeout, check=False)


def mpiexec() -> str | None:
    """The mpiexec beside this Python (the mpich wheel), else one on PATH, if mpi4py imports."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    local = Path(sys.executable).with_name("mpiexec")
    if local.exists():
        return str(local)
    return shutil.which("mpiexec")


def solver_settings(**changes):
    """The schema's default solver settings with some fields changed."""
    from hinqs.loop.settings import RunSettings, with_overrides

    return with_overrides(RunSettings.defaults().sqd.solver, **changes)


def parallel_settings(**changes):
    """The schema's default parallel settings with some fields changed."""
    from hinqs.loop.settings import RunSettings, with_overrides

    return with_overrides(RunSettings.defaults().parallel, **changes)


def kernel_hamiltonians(root: Path) -> dict:
    """LiH, NH triplet and N2/6-31G frozen core, loaded: the kernel tests' real Hamiltonians
    (no frozen core, open shell, frozen core)."""
    from hinqs.io.hamiltonian import load_hamiltonian

    return {name: load_hamiltonian(build_hamiltonian(name, root / name)) for name in ("lih", "nh", "n2")}


def system_with_subspace(root: Path, name: str, n_pairs: int, n_strings: int) -> dict:
    """A real Hamiltonian folder and a saved subspace of ``n_pairs`` determinants over ``n_strings``
    strings per spin, for the engine, CLI and dimension tests (one fixture body, three users)."""
    from hinqs.io.hamiltonian import load_hamiltonian

    ham_dir = build_hamiltonian(name, root / "hamiltonian")
    ham = load_hamiltonian(ham_dir)
    alpha, beta, counts = make_subspace(ham.norb, ham.nelec, n_pairs, n_strings=n_strings)
    subspace = root / "subspace.npz"
    np.savez(subspace, alpha=alpha, beta=beta, counts=counts)
    return {"ham": ham_dir, "nelec": ham.nelec, "alpha": alpha, "beta": beta, "counts": counts, "subspace": subspace,
            "root": root}  # fmt: skip


def computed_mask(n: int) -> np.ndarray:
    """Which elements of a mirrored n x n product its rows compute (hinqs.kernel.rows.computes):
    each row its cyclic window of half the columns, every pair (x, y), (y, x) once."""
    from hinqs.kernel.rows import computes

    return np.array([[computes(g, y, n) for y in range(n)] for g in range(n)])
