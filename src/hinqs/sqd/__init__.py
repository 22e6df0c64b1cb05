"""The parallel SQD engine: batches of the subspace diagonalised across processes.

Modules, one job each:

- :mod:`~hinqs.sqd.registry`  the solver and executor names (one list, the schema's enums);
- :mod:`~hinqs.sqd.settings`  the step's settings (from the config, the CLI or Python);
- :mod:`~hinqs.sqd.batches`   seeded batch formation, one random stream per batch;
- :mod:`~hinqs.sqd.solvers`   ``solve_fermion`` and the ``lean`` solver;
- :mod:`~hinqs.sqd.task`      the solve task run by every executor;
- :mod:`~hinqs.sqd.messages`  batch status, error kinds and worker messages, typed;
- :mod:`~hinqs.sqd.worker`    worker process start-up (threads, MPI variables);
- :mod:`~hinqs.sqd.faults`    the ``HINQS_FAULT_INJECT`` test hook;
- :mod:`~hinqs.sqd.executors` sequential, process and MPI backends, the retry/blame policy;
- :mod:`~hinqs.sqd.store`     per-batch files and resuming;
- :mod:`~hinqs.sqd.merge`     lowest energy wins;
- :mod:`~hinqs.sqd.step`      :func:`run_diagonalization`, the entry point.

Files are read and written through :mod:`hinqs.io` (ground states, step results, the
output folder's layout); the engine imports nothing of :mod:`hinqs.subspace` or :mod:`hinqs.nqs`.

This package's ``__init__`` imports nothing heavy: spawned workers import
:mod:`hinqs.sqd.worker` through it before their thread counts are set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hinqs.sqd.settings import ParallelSettings, SolverSettings, SQDSettings
    from hinqs.sqd.step import run_diagonalization

__all__ = [
    "ParallelSettings",
    "SQDSettings",
    "SolverSettings",
    "run_diagonalization",
]

_LAZY = {
    "ParallelSettings": "hinqs.sqd.settings",
    "SQDSettings": "hinqs.sqd.settings",
    "SolverSettings": "hinqs.sqd.settings",
    "run_diagonalization": "hinqs.sqd.step",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
