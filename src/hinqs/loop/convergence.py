"""When the HI-NQS-SQD loop stops, and why: the stop reason tells the truth about the error.

Every SQD energy is a variational upper bound, and the batches of an iteration are random
subsets of the subspace, so an iteration's merged energy can rise even though the subspace
only grows. The loop therefore follows the best (lowest) energy so far, and an iteration
*settles* when (a) the best energy improved by less than ``iterations.tol`` and (b) the
iteration's own energy did not rise by more than ``tol`` over the previous one's (a rising
energy means the subspace is changing). ``window`` settled iterations in a row end the
exchange of strings at the current size. A rise to an energy the loop already had (within
``tol``, among the last ``window + 1``) is no change either: the subspace cycles between sets
of strings (measured: stretched N2 with the expansion alone alternated between two energies
6e-6 Ha apart for 25 iterations, each rise restarting the count, until the iteration ceiling).
What that means is read from the error estimate, the iteration's EN-PT2 (:class:`Evidence`):

``accurate``  |E_PT2| plus its 95 % half-width is within ``accuracy.target_mha`` (chemical
    accuracy by default): the variational energy is that close to the exact one. Also at
    once, without waiting for the window, when that bound is below ``tol`` (the whole space).
``budget``  the PT2 asks for more strings but the budget allows no larger subspace
    (:mod:`hinqs.loop.growth`: a fixed cap, the determinant budget, or the modelled time),
    or a growing run has spent the modelled time of ``accuracy.budget.hours``; ``detail``
    names which and what it allows.
``stalled``  the PT2 asks for more, nothing limits the subspace, and yet the loop settled:
    it does not find the strings it needs.
``settled``  no error estimate (PT2 off): the energy stopped changing, nothing more is known.
``max_iterations``  ``iterations.max`` reached first (null: :func:`iteration_limit`).

While the PT2 is above the target and the subspace has filled its cap without gaining
(``growth.STUCK_SHARE`` of |E_PT2| per iteration), the next cap grows
(:func:`hinqs.loop.growth.next_cap`) and the window starts over. A positive E_PT2 (external
determinants below E_var: the Epstein-Nesbet denominators changed sign, so the sum means
nothing) is never taken as accuracy; it asks for growth like a large one. The status of
iteration k carries the whole history (energies, the cap, the modelled seconds spent), so
deciding k+1 needs only the status of k (Snakemake's checkpoint reads one small file per
iteration), and ``next_strings_cap`` is the cap iteration k+1's subspace is built under.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from hinqs.errors import InputError
from hinqs.io.atomic import write_json
from hinqs.loop.defaults import SystemSize, iteration_seconds
from hinqs.loop.growth import STUCK_SHARE, AccuracySettings, next_cap

REASONS = ("accurate", "budget", "stalled", "settled", "max_iterations")
FIXED_CAP_ITERATIONS = 10  # iterations.max null, the cap fixed: the loop settles well within it
# iterations.max null, the cap growing: a cap grown 1.5x per level needs two iterations or more
# to fill and settle at each (a stretched N2 grew once and stopped accurate at iteration 9; an
# iron-sulfur cluster grew twice by iteration 9 and was still gaining), so the modelled time
# budget, not a count, should end such a run: this only bounds the workflow's plan.
GROWING_CAP_ITERATIONS = 30
ITERATION_CEILING = max(FIXED_CAP_ITERATIONS, GROWING_CAP_ITERATIONS)  # the most a workflow plans for


@dataclass(frozen=True)
class Status:
    """``status.json``: the stop decision after one iteration (``converged``: stopped accurate)."""

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
    detail: str | None = None  # what the reason means here (which budget, what it allows)
    e_pt2: float | None = None  # this iteration's EN-PT2 (Ha), when computed
    e_pt2_ci95: float | None = None
    strings_cap: int | None = None  # the cap this iteration's subspace was built under (0: none)
    next_strings_cap: int | None = None  # the cap of the next iteration's subspace
    modelled_seconds: float | None = None  # the loop's modelled time so far (accuracy.budget)


@dataclass(frozen=True)
class Evidence:
    """What the check knows of an iteration besides its energy: the error estimate and size."""

    e_pt2: float | None = None  # Ha; None: not computed
    e_pt2_ci95: float = 0.0
    strings: int = 0  # strings per spin of the solved product space (the larger spin)
    cap: int = 0  # the string cap its subspace was built under (0: none)
    intruders: int = 0  # connected determinants below E_var (hinqs.subspace.pt2.PT2Estimate)

    def error_bound(self) -> float | None:
        """|E_PT2| plus its half-width, or None where the PT2 says nothing (absent, positive, or
        with determinants below E_var left out of it: the subspace misses what matters)."""
        if self.e_pt2 is None or self.e_pt2 > 0 or self.intruders > 0:
            return None
        return -self.e_pt2 + self.e_pt2_ci95


@dataclass(frozen=True)
class GrowthContext:
    """What growing the cap needs: the system's size, the accuracy settings and the limits."""

    size: SystemSize
    accuracy: AccuracySettings
    determinants: int | None  # the most a grown subspace may span (the budget within the batch cap)
    fixed: bool  # the cap never grows (hinqs.loop.growth.AccuracySettings.grows)


def iteration_limit(configured: int | None, growth: GrowthContext | None) -> int:
    """The iteration count after which the loop stops (``max_iterations``): the config's
    ``iterations.max``, else :data:`GROWING_CAP_ITERATIONS` for a run whose cap grows and
    :data:`FIXED_CAP_ITERATIONS` for any other."""
    if configured is not None:
        return int(configured)
    growing = growth is not None and not growth.fixed
    return GROWING_CAP_ITERATIONS if growing else FIXED_CAP_ITERATIONS


def _time_spent(growth: GrowthContext | None, spent: float) -> str | None:
    """Why a growing run's modelled time is used up, or None (a fixed cap is the user's size:
    the time budget only bounds growth)."""
    if growth is None or growth.fixed:
        return None
    budget = growth.accuracy.budget
    if spent < budget.hours * 3600.0:
        return None
    return (
        f"time: {spent / 3600.0:.2f} h modelled on {budget.cores} cores reached accuracy.budget.hours"
        f" = {budget.hours:g}"
    )


def _settled(
    previous: Status | None, best: float, energy: float, tol: float, window: int
) -> tuple[float | None, float | None, bool]:
    """(delta of the best, rise over the previous energy, settled): the best gained less than
    ``tol`` and the energy did not rise by more, or rose back to one of the last ``window + 1``."""
    if previous is None:
        return None, None, False
    delta = best - previous.best_energy
    rise = float(energy) - previous.energy
    revisited = any(abs(float(energy) - e) <= tol for e in previous.energies[-(window + 1) :])
    return delta, rise, abs(delta) < tol and (rise <= tol or revisited)


def next_status(
    previous: Status | None,
    iteration: int,
    energy: float,
    *,
    tol: float,
    window: int,
    max_iterations: int | None,
    evidence: Evidence | None = None,
    growth: GrowthContext | None = None,
) -> Status:
    """The status after ``iteration`` produced ``energy``, given the status before it
    (``max_iterations``: ``iterations.max``, None to derive it, :func:`iteration_limit`)."""
    evidence = evidence or Evidence()
    energies = [*(previous.energies if previous else []), float(energy)]
    if len(energies) != iteration:
        raise InputError(f"iteration {iteration} follows a status with {len(energies) - 1} iterations")
    best = min(energies)
    delta, rise, settled = _settled(previous, best, energy, tol, window)
    streak = (previous.streak + 1 if previous else 1) if settled else 0
    cap = evidence.cap
    spent = (previous.modelled_seconds or 0.0) if previous else 0.0
    if growth is not None:
        spent += iteration_seconds(growth.size, cap or growth.size.n_strings, growth.accuracy.budget.cores)
    bound = evidence.error_bound()
    target = growth.accuracy.target_ha if growth is not None else None
    accurate = bound is not None and target is not None and bound <= target
    reason, detail, next_cap_value = None, None, cap
    if accurate and (streak >= window or bound <= tol):
        reason = "accurate"
        detail = f"|E_PT2| + 95 % half-width {bound * 1000:.3g} mHa <= target {growth.accuracy.target_mha:g} mHa"
    elif growth is not None and evidence.e_pt2 is not None and not accurate:
        full = 0 < cap <= evidence.strings
        small_gain = delta is not None and abs(delta) < max(tol, STUCK_SHARE * abs(evidence.e_pt2))
        if full and (small_gain or streak >= window):
            decision = next_cap(growth.size, cap, growth.accuracy, spent, growth.determinants, fixed=growth.fixed)
            if decision.grown:
                next_cap_value, streak = decision.cap, 0
            elif streak >= window:
                limit = decision.blocked_by
                if limit is not None and limit.which != "space":
                    reason, detail = "budget", f"{limit.which}: {limit.detail}"
                else:
                    reason, detail = "stalled", "every string is in the subspace"
        elif streak >= window:
            reason = "stalled"
            detail = f"{evidence.strings:,} strings per spin" + (f" under a cap of {cap:,}" if cap else ", no cap")
    elif streak >= window:
        reason = "settled" if evidence.e_pt2 is None else "stalled"
        detail = "no PT2 error estimate" if evidence.e_pt2 is None else None
    if reason is None and not accurate and (spent_detail := _time_spent(growth, spent)):
        reason, detail = "budget", spent_detail
    limit = iteration_limit(max_iterations, growth)
    if reason is None and iteration >= limit:
        detail = f"iterations.max = {limit}"
        if max_iterations is None:
            detail += f" (null: the default for a {'growing' if limit == GROWING_CAP_ITERATIONS else 'fixed'} cap)"
        reason = "max_iterations"
    return Status(
        iteration=iteration,
        energy=float(energy),
        delta=delta,
        rise=rise,
        streak=streak,
        energies=energies,
        best_energy=best,
        best_iteration=energies.index(best) + 1,
        converged=reason == "accurate",
        stop=reason is not None,
        reason=reason,
        detail=detail,
        e_pt2=evidence.e_pt2,
        e_pt2_ci95=evidence.e_pt2_ci95 if evidence.e_pt2 is not None else None,
        strings_cap=cap,
        next_strings_cap=next_cap_value,
        modelled_seconds=spent if growth is not None else None,
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
