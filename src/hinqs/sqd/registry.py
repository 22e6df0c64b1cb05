"""The names a run config may give the batch solver and the executor, in one place.

The settings validate against these tuples, the solver and executor factories are keyed by
them, and a test holds the config schema's enums (``sqd.solver``, ``parallel.executor``)
equal to them, so a new solver or backend cannot be half-registered.
"""

from __future__ import annotations

SOLVERS: tuple[str, ...] = ("direct", "solve_fermion", "lean")
"""Batch solvers: hinqs' own product-space kernel (``direct``, the default), qiskit-addon-sqd's
``solve_fermion`` (the reference) and the ``lean`` PySCF path."""

EXECUTORS: tuple[str, ...] = ("sequential", "process", "mpi", "distributed")
"""Where batches run: in-process one after another, a local process pool, MPI ranks (a batch
each), or every batch on all MPI ranks together (``distributed``: its products split by rows)."""

DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
"""Where the ``direct`` solver applies H: the numba kernel on the host (``cpu``, the default),
the torch kernel on a CUDA GPU (``cuda``), or the GPU when the worker's torch sees one
(``auto``). ``cuda:N`` names one GPU of several."""

TORCH_CPU = "torch-cpu"
"""Not a config value: the torch kernel on the host's CPU, which tests and benchmarks use to
run the GPU formulation on a machine without one."""
