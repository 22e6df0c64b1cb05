"""The solve task: one batch in, one outcome out, the same in every executor.

A :class:`BatchTask` carries only its batch (the subspace strings), the path of the
Hamiltonian folder and the solver settings, never the integrals: the process that runs it
opens ``hcore.npy``/``eri.npy`` as read-only memory maps, once per process (cached by path),
so every worker of a node shares one copy of the integrals through the page cache.

:func:`run_task` never raises for a failed batch: an exception, a non-finite energy or a
timeout comes back as a ``failed`` :class:`BatchOutcome` with the reason, so a batch
fails alone. Only a dead process (SIGKILL, segfault, out of memory) cannot report; the
executor notices and records that.

The batch timeout is enforced here with ``SIGALRM`` (main thread only): the handler raises
between Python statements, i.e. between Davidson iterations. A single long call into C
cannot be interrupted this way, which is why the ``process`` executor also kills the
worker once the timeout plus a grace period has passed.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hinqs import deadline
from hinqs.io.files import GroundState
from hinqs.sqd import faults
from hinqs.sqd.messages import BatchStatus, ErrorKind
from hinqs.sqd.settings import SolverSettings
from hinqs.sqd.worker import preload, report_start
from hinqs.threads import thread_limit

if TYPE_CHECKING:
    from hinqs.sqd.solvers import SolverFunction

OK = BatchStatus.OK
FAILED = BatchStatus.FAILED


class BatchTimeout(TimeoutError):
    """Raised inside the task when the batch exceeds its time limit."""


@dataclass(frozen=True)
class BatchTask:
    """Everything a process needs to solve one batch attempt (picklable, small)."""

    hamiltonian_dir: str
    index: int
    ci_strs_a: np.ndarray
    ci_strs_b: np.ndarray
    nelec: tuple[int, int]
    solver: SolverSettings
    threads: int = 1
    timeout: float | None = None
    attempt: int = 1
    initial_guess: str | None = None  # a previous state.npz to start Davidson from (warm start)


@dataclass
class BatchOutcome:
    """The result of one batch attempt; ``state`` is set only for a successful solve."""

    index: int
    attempt: int
    status: BatchStatus
    energy: float | None = None
    product_shape: tuple[int, int] = (0, 0)
    spin_sq: float | None = None
    converged: bool | None = None
    residual_norm: float | None = None
    seconds: float = 0.0
    threads: int | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    warnings: list[str] = field(default_factory=list)
    pid: int | None = None
    host: str | None = None
    peak_rss_mb: float | None = None
    state: GroundState | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


def failed_outcome(task: BatchTask, kind: ErrorKind, error: str, **extra: Any) -> BatchOutcome:
    """A failed outcome built outside the task (e.g. by an executor whose worker died)."""
    return BatchOutcome(
        index=task.index,
        attempt=task.attempt,
        status=FAILED,
        product_shape=(len(task.ci_strs_a), len(task.ci_strs_b)),
        error=error,
        error_kind=kind,
        **extra,
    )


_HAMILTONIANS: dict[str, tuple[tuple[int, int], Any]] = {}


def open_hamiltonian(directory: str) -> Any:
    """The memory-mapped Hamiltonian of ``directory``, opened once per process.

    Keyed by path and by meta.json's inode and mtime, so a folder replaced on disk (they
    are written as a whole and renamed into place) is opened afresh.
    """
    from hinqs.io.hamiltonian import META_FILE, load_hamiltonian

    path = str(Path(directory).resolve())
    stat = os.stat(Path(path) / META_FILE)
    key = (stat.st_ino, stat.st_mtime_ns)
    cached = _HAMILTONIANS.get(path)
    if cached is None or cached[0] != key:
        if len(_HAMILTONIANS) >= 4:  # a long-lived process (sequential, kept pools) meets few folders
            _HAMILTONIANS.clear()
        _HAMILTONIANS[path] = (key, load_hamiltonian(path, mmap=True))
    return _HAMILTONIANS[path][1]


def time_limit(seconds: float | None) -> contextlib.AbstractContextManager[None]:
    """Raise :class:`BatchTimeout` in this (main) thread after ``seconds``; no-op elsewhere."""
    return deadline.time_limit(seconds, lambda: BatchTimeout(f"exceeded batch_timeout={seconds:g} s"))


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    ``VmHWM`` from /proc where available: ``ru_maxrss`` survives ``exec``, so a spawned worker
    would report its parent's size at the moment of the spawn if that was larger.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line (messages end up in one-line CLI errors and JSON)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def embedded_state(path: str, strs_a: np.ndarray, strs_b: np.ndarray) -> np.ndarray | None:
    """A saved ground state's amplitudes on the product space ``strs_a x strs_b``, normalised.

    Strings the state does not hold get zero; None when the two share no determinant (a
    cold start is then the only option).
    """
    from hinqs.io.files import read_state

    guess = read_state(path).on(strs_a, strs_b)
    norm = float(np.linalg.norm(guess))
    return guess / norm if norm > 1e-8 else None


def run_task(task: BatchTask, solve_function: SolverFunction | None = None) -> BatchOutcome:
    """Solve one batch; always returns an outcome (``ok`` or ``failed`` with the reason).

    ``solve_function`` replaces the settings' solver function (the ``distributed``
    executor's solve spread over MPI ranks, :func:`hinqs.sqd.distributed.solve_spread`).
    """
    from hinqs.sqd.solvers import solve

    preload(task.solver.solver, task.solver.device)  # loads every BLAS/OpenMP library before thread_limit pins them
    report_start(task.index, task.attempt)
    start = time.perf_counter()
    shape = (len(task.ci_strs_a), len(task.ci_strs_b))
    base = {"index": task.index, "attempt": task.attempt, "product_shape": shape}
    where = {"pid": os.getpid(), "host": socket.gethostname()}
    threads_used: int | None = None
    try:
        with (
            time_limit(task.timeout),
            thread_limit(task.threads, load_pyscf=False) as threads_used,  # preload loaded what the solver needs
            faults.FaultRun(faults.lookup(task.index, task.attempt)) as injected,
        ):
            ham = open_hamiltonian(task.hamiltonian_dir)
            guess = None
            if task.initial_guess is not None:
                guess = embedded_state(task.initial_guess, task.ci_strs_a, task.ci_strs_b)
            out = solve(task.ci_strs_a, task.ci_strs_b, ham.hcore, ham.eri, task.nelec, task.solver, guess=guess,
                        function=solve_function)  # fmt: skip
            energy = injected.after(out.energy + ham.ecore)
    except BatchTimeout as exc:
        return BatchOutcome(
            **base, status=FAILED, seconds=time.perf_counter() - start, threads=threads_used,
            error=str(exc), error_kind=ErrorKind.TIMEOUT, peak_rss_mb=_peak_rss_mb(), **where,
        )  # fmt: skip
    except Exception as exc:
        return BatchOutcome(
            **base, status=FAILED, seconds=time.perf_counter() - start, threads=threads_used,
            error=_one_line(exc), error_kind=ErrorKind.EXCEPTION, peak_rss_mb=_peak_rss_mb(), **where,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    common = {
        **base,
        "spin_sq": out.spin_sq,
        "converged": out.converged,
        "residual_norm": out.residual_norm,
        "seconds": seconds,
        "threads": threads_used,
        "warnings": out.warnings,
        "peak_rss_mb": _peak_rss_mb(),
        **where,
    }
    if not math.isfinite(energy) or not np.all(np.isfinite(out.state.amplitudes)):
        what = f"energy {energy!r}" if not math.isfinite(energy) else "amplitudes"
        return BatchOutcome(
            **common,
            status=FAILED,
            energy=None,
            error=f"non-finite result: {what}",
            error_kind=ErrorKind.NON_FINITE,
        )
    return BatchOutcome(**common, status=OK, energy=float(energy), state=out.state)
