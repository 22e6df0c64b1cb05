"""Every thread count hinqs sets, in one place: BLAS/OpenMP pools, numba's kernels, torch.

Below the domains (like :mod:`hinqs.deadline`): the engine, prepare, PT2 and the NQS stages
pin their threads with it without reaching into each other's packages, and it imports none
of them (numba, torch and PySCF load only when a block asks for their pools).

Why one place: the kernel's bits do not depend on its thread count (each output row is one
thread's, summed in a fixed order), but BLAS's do (OpenBLAS splits a dot product of more
than 10,000 elements across its threads), so each block says which pool may use the task's
threads and which runs on one. A spawned worker reads its counts from the environment
(:func:`thread_variables`) before NumPy loads; a process that loaded NumPy earlier keeps the
count it loaded with unless a block here limits it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",  # the size of numba's pool for hinqs.kernel: a worker never starts more
)


def thread_variables(threads: int) -> dict[str, str]:
    """The environment a process needs, before NumPy loads, to start its pools at ``threads``.

    ``OMP_WAIT_POLICY=PASSIVE`` keeps idle OpenMP threads from spinning, which costs 2-5x
    when threads outnumber free cores.
    """
    return {**{name: str(threads) for name in THREAD_VARS}, "OMP_WAIT_POLICY": "PASSIVE"}


@contextlib.contextmanager
def numba_threads(threads: int) -> Iterator[int]:
    """Run hinqs' numba kernels of this thread on ``threads`` threads (at most numba's pool size)."""
    import numba as nb

    previous = nb.get_num_threads()
    used = max(1, min(int(threads), nb.config.NUMBA_NUM_THREADS))
    nb.set_num_threads(used)
    try:
        yield used
    finally:
        nb.set_num_threads(previous)


@contextlib.contextmanager
def torch_threads(threads: int | None = None) -> Iterator[int]:
    """Torch's CPU threads for a block (``None``: keep the current count), put back afterwards.

    The putting back is also a guard: numba's OpenMP layer, if a user selects it, resets the
    process's OpenMP thread count, which torch shares.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(before if threads is None else int(threads))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def thread_limit(threads: int, *, load_pyscf: bool = True) -> Iterator[int]:
    """Run every pool of this process (BLAS, OpenMP, numba's, PySCF's) on ``threads``; yield
    the count the solver's pool reports (PySCF's OpenMP, else numba's).

    Every pool, not only PySCF's OpenMP: limiting NumPy's bundled BLAS too gives every
    executor (a spawned worker, the ``sequential`` executor's process, a user's script) the
    same arithmetic, hence the same bits. Libraries are limited as loaded when the block
    starts, so the caller imports the solver's modules first. ``load_pyscf=False`` limits
    PySCF only where it is already loaded: hinqs' own ``direct`` solver and PT2 do not need
    it, and a rank of a spread solve saves its 40 MB (docs/performance.md).
    """
    from threadpoolctl import threadpool_limits

    if load_pyscf:
        import pyscf.lib  # noqa: F401
    with threadpool_limits(limits=threads), numba_threads(threads) as used, _pyscf_threads(threads) as omp:
        yield used if omp is None else omp


@contextlib.contextmanager
def _pyscf_threads(threads: int) -> Iterator[int | None]:
    """PySCF's OpenMP count for a block where PySCF is loaded (yields the count it reports), else None."""
    lib = sys.modules.get("pyscf.lib")
    if lib is None:
        yield None
        return
    previous = lib.num_threads()
    lib.num_threads(threads)
    try:
        yield lib.num_threads()
    finally:
        lib.num_threads(previous)


@contextlib.contextmanager
def kernel_on_task_threads() -> Iterator[int]:
    """The kernel on the threads the task was given (numba's count, as :func:`thread_limit` or
    the worker's environment set it), BLAS on one: the Davidson's vector algebra then sums in
    one order whatever the thread count, and the kernel's rows do not depend on it."""
    import numba as nb
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield nb.get_num_threads()
