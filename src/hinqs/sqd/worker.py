"""Start-up of worker processes: thread counts and launcher variables, set before NumPy loads.

OpenMP and BLAS read their thread counts once, when the library loads, so a worker must
have ``OMP_NUM_THREADS`` and friends (:func:`hinqs.threads.thread_variables`) in its
environment before NumPy or PySCF is imported.
The ``process`` executor therefore sets them twice: in the parent's environment for the
instant the pool spawns its processes (a spawned child inherits them before its
interpreter starts, whatever the parent's ``__main__`` imports), and again in the worker
initializer. Each solve then pins every pool again
(:func:`hinqs.threads.thread_limit`), which is what makes a process that loaded NumPy
before any of this (the ``sequential`` executor's) compute the same bits as a worker.

MPI launcher variables are stripped from ``process`` workers. qiskit-addon-sqd imports
mpi4py and calls ``MPI_Init`` at import time when it sees ``SLURM_NTASKS``, ``PMI_SIZE``,
``OMPI_COMM_WORLD_SIZE`` or ``MPI_LOCALNRANKS``. A pool worker is not an MPI rank: under
``srun`` it would try to join the parent's job step with the parent's rank identity,
which some MPI stacks answer with a hang or an abort. Without those variables every
worker stays a plain single process (it never communicates). ``mpi`` workers are real
ranks and keep them.

This module imports nothing heavy at module level: it is the first thing a spawned worker
unpickles.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from hinqs.sqd.messages import BatchStarted, WorkerHello, WorkerInfo
from hinqs.threads import thread_variables

LAUNCHER_PREFIXES = ("OMPI_", "PMI_", "PMIX_", "HYDRA_", "I_MPI_", "MPI_LOCALNRANKS", "MPI_LOCALRANKID")
LAUNCHER_NAMES = ("SLURM_NTASKS", "SLURM_NPROCS", "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID")

_start_channel: Any = None
_numpy_before_environment: bool | None = None


def worker_environment(threads: int, environ: Mapping[str, str], strip_launcher: bool) -> dict[str, str | None]:
    """The changes a worker needs: variable -> new value, or ``None`` to remove it."""
    changes: dict[str, str | None] = {**thread_variables(threads)}
    if strip_launcher:
        for name in environ:
            if name.startswith(LAUNCHER_PREFIXES) or name in LAUNCHER_NAMES:
                changes[name] = None
    return changes


def apply_environment(changes: Mapping[str, str | None]) -> dict[str, str | None]:
    """Apply changes to ``os.environ``; return the previous values so they can be restored."""
    previous = {name: os.environ.get(name) for name in changes}
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return previous


@contextlib.contextmanager
def spawn_environment(threads: int, strip_launcher: bool = True) -> Iterator[None]:
    """Parent side: the worker environment in ``os.environ`` while processes are spawned."""
    previous = apply_environment(worker_environment(threads, os.environ, strip_launcher))
    try:
        yield
    finally:
        apply_environment(previous)


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Parent side: spawned children must not re-run the caller's ``__main__``.

    A spawned child normally imports the parent's main script (as ``__mp_main__``) before
    it does anything else: that re-runs any unguarded top-level code of a user's script
    (spawning workers from it again), costs start-up time and may load NumPy before the
    thread variables are set. Workers only run functions of this package, so while they
    are spawned the main module is replaced by an empty one, as mpi4py's ``main=False``
    does for MPI workers.
    """
    import types

    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def preload(solver: str | None, device: str | None = None) -> float:
    """Import what ``solver`` needs (PySCF's selected CI; qiskit-addon-sqd for ``solve_fermion``;
    the torch kernel for ``direct`` on a ``device`` other than ``cpu``: torch is never loaded
    for the numba kernel).

    Done once per worker at start so that no batch's time (or timeout) pays for it. It is
    most of a worker's start-up: about 1 s for PySCF, 2 s with qiskit-addon-sqd (which
    brings JAX and Qiskit), so the ``lean`` solver also starts its pools faster.
    """
    start = time.perf_counter()
    # Davidson's per-cycle lines of a long solve reach the step's log as they happen.
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if solver is not None and solver != "direct":  # the direct solver is hinqs' kernel: no PySCF
        import pyscf.fci.selected_ci  # noqa: F401
    if solver == "solve_fermion":
        import qiskit_addon_sqd.fermion  # noqa: F401
    if solver == "direct":
        import hinqs.kernel  # noqa: F401  (numba's compiled kernels, from its cache after the first run)
    if solver == "direct" and device not in (None, "cpu"):
        from hinqs.kernel import torch_kernel  # noqa: F401  (torch: about 1-2 s)
    return time.perf_counter() - start


def initialize_process_worker(threads: int, channel: Any = None, solver: str | None = None) -> None:
    """``ProcessPoolExecutor`` initializer: environment, start channel, Ctrl-C left to the parent."""
    global _start_channel, _numpy_before_environment
    _numpy_before_environment = "numpy" in sys.modules
    apply_environment(worker_environment(threads, os.environ, strip_launcher=True))
    _start_channel = channel
    # The parent handles Ctrl-C and stops the pool; workers would only print tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seconds = preload(solver)
    if channel is not None:
        with contextlib.suppress(Exception):
            channel.send(WorkerHello(worker_info(), seconds))


def initialize_mpi_worker(threads: int, solver: str | None = None) -> None:
    """``MPIPoolExecutor`` initializer: thread environment only (ranks keep the launcher variables)."""
    global _numpy_before_environment
    _numpy_before_environment = "numpy" in sys.modules
    apply_environment(worker_environment(threads, os.environ, strip_launcher=False))
    preload(solver)


def worker_info() -> WorkerInfo:
    """Pid, host, thread setting and whether NumPy had loaded before it was set (the warm-up task)."""
    import socket

    return WorkerInfo(
        pid=os.getpid(),
        host=socket.gethostname(),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        has_launcher_vars=any(n.startswith(LAUNCHER_PREFIXES) or n in LAUNCHER_NAMES for n in os.environ),
        numpy_before_environment=_numpy_before_environment,
        mpi_loaded="mpi4py.MPI" in sys.modules,
    )


def report_start(index: int, attempt: int) -> None:
    """Tell the parent which process started which batch attempt, and when (process executor only).

    Written synchronously to a pipe, so the message is out before the solve starts.

    The parent uses it to time a batch from its real start and, if a worker dies, to know
    which batch it was running.
    """
    if _start_channel is not None:
        with contextlib.suppress(Exception):
            _start_channel.send(BatchStarted(index, attempt, os.getpid(), time.time()))
