"""When the HI-NQS-SQD loop stops.

Every SQD energy is a variational upper bound, and the batches of an iteration are random
subsets of the subspace, so an iteration's merged energy can rise even though the subspace
only grows. The loop therefore follows the best (lowest) energy so far, and an iteration counts
towards convergence only when (a) the best energy improved by less than ``tol`` and (b) the
iteration's own energy did not rise by more than ``tol`` over the previous iteration's. It
stops after ``window`` such iterations in a row, or at ``max`` iterations. (b) keeps a run
whose energy is climbing (e.g. a size cap evicting what the state needs) from being
reported as converged: a rising energy means the subspace is changing, not settled. The
summary reports the best iteration, whatever the last one did. The status of iteration k
carries the whole energy history, so deciding k+1 needs only the status of k (Snakemake's
checkpoint reads one small file per iteration).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from hinqs.errors import InputError
from hinqs.io.atomic import write_json


@dataclass(frozen=True)
class Status:
    """``status.json``: the convergence decision after one iteration."""

    iteration: int
    energy: float
    delta: float | None
    rise: float | None  # this iteration's energy minus the previous one's
    streak: int
    energies: list[float]
    best_energy: float
    best_iteration: int
    converged: bool
    stop: bool
    reason: str | None


def next_status(
    previous: Status | None, iteration: int, energy: float, *, tol: float, window: int, max_iterations: int
) -> Status:
    """The status after ``iteration`` produced ``energy``, given the status before it."""
    energies = [*(previous.energies if previous else []), float(energy)]
    if len(energies) != iteration:
        raise InputError(f"iteration {iteration} follows a status with {len(energies) - 1} iterations")
    best = min(energies)
    delta = None if previous is None else best - previous.best_energy
    rise = None if previous is None else float(energy) - previous.energy
    settled = delta is not None and abs(delta) < tol and rise is not None and rise <= tol
    streak = (previous.streak + 1 if previous else 1) if settled else 0
    converged = streak >= window
    reason = "converged" if converged else ("max_iterations" if iteration >= max_iterations else None)
    return Status(
        iteration=iteration,
        energy=float(energy),
        delta=delta,
        rise=rise,
        streak=streak,
        energies=energies,
        best_energy=best,
        best_iteration=energies.index(best) + 1,
        converged=converged,
        stop=reason is not None,
        reason=reason,
    )


def read_status(path: str | os.PathLike[str]) -> Status:
    """One iteration's status.json; a missing, garbled or inconsistent file is one line."""
    from hinqs.io.files import read_json

    data = read_json(path, "iteration status")
    try:
        status = Status(**data)
    except TypeError as exc:
        raise InputError(f"cannot read iteration status {path}: {exc}") from None
    problem = _status_problem(status)
    if problem:
        raise InputError(f"{path}: not a valid iteration status ({problem})")
    return status


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _status_problem(status: Status) -> str | None:
    """What is wrong with a status read from disk (wrong types, a history that does not add up),
    or None: the next check and the summary compute with these values."""
    if not isinstance(status.iteration, int) or isinstance(status.iteration, bool) or status.iteration < 1:
        return f"iteration {status.iteration!r}"
    if not isinstance(status.energies, list) or not all(_is_number(e) for e in status.energies):
        return "energies must be a list of finite numbers"
    if len(status.energies) != status.iteration:
        return f"{len(status.energies)} energies for iteration {status.iteration}"
    for name in ("energy", "best_energy"):
        if not _is_number(getattr(status, name)):
            return f"{name} {getattr(status, name)!r}"
    if not isinstance(status.streak, int) or not isinstance(status.best_iteration, int):
        return "streak and best_iteration must be integers"
    return None


def write_status(path: str | os.PathLike[str], status: Status) -> None:
    """Write one iteration's status.json atomically."""
    write_json(path, asdict(status))
