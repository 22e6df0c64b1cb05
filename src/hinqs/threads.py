"""Thread limits shared by every step that calls BLAS/OpenMP: prepare, the SQD solves and PT2.

Below the domains (like :mod:`hinqs.deadline`): the engine pins its solves with it, and the
prepare and PT2 steps pin theirs, without either reaching into the other's package.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def thread_limit(threads: int) -> Iterator[int]:
    """Run every thread pool of this process on ``threads`` threads; yield the count OpenMP reports.

    Every pool, not only PySCF's OpenMP: NumPy's bundled OpenBLAS splits a dot product of
    more than 10,000 elements across its threads, so Davidson's overlaps (vectors of the
    batch's product-space size) round differently at 1 and 2 BLAS threads. A spawned
    worker gets its BLAS thread count from the environment before NumPy loads; a process
    that loaded NumPy earlier (the ``sequential`` executor's, a user's script) keeps the
    count it loaded with, one per core, unless it is limited here. Limiting it gives
    every executor the same arithmetic, hence the same bits. Libraries are limited as
    loaded when the block starts, so the caller imports the solver's modules first.
    """
    from pyscf import lib
    from threadpoolctl import threadpool_limits

    from hinqs.kernel import kernel_threads

    previous = lib.num_threads()
    with threadpool_limits(limits=threads), kernel_threads(threads):
        lib.num_threads(threads)
        try:
            yield lib.num_threads()
        finally:
            lib.num_threads(previous)
