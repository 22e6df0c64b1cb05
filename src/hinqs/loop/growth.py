"""How large the subspace may grow: the string cap of the next iteration, from the error.

The size-derived cap (:mod:`hinqs.loop.defaults`) assumes that the correlation lives within
quadruple excitations of one reference, which holds near equilibrium. Where many electrons
are strongly correlated at once (stretched chains, broken multiple bonds, metal clusters)
the state spreads over most of the string space, and no choice of strings under that cap
can be accurate (a 12-atom hydrogen chain at 1.8 A: the best 393 strings per spin leave
82 mHa). Selected-CI codes (CIPSI, SHCI) therefore grow the variational space until the PT2
says it is accurate. This module does that for the string cap:

- the loop runs under a cap; once the subspace fills it and exchanging strings no longer
  pays (the best energy improved by less than ``STUCK_SHARE`` of |E_PT2|), while |E_PT2|
  is above ``accuracy.target_mha``, the next iteration's cap is ``growth_factor`` times
  larger;
- never beyond the budget the config states (:class:`Ceiling`): ``accuracy.budget.determinants``
  (null: the batch cap the diagonalisation derives from ``sqd.max_dimension`` / ``sqd.memory_mb``),
  and ``accuracy.budget.hours`` on ``accuracy.budget.cores`` cores by the loop's cost model
  (:func:`hinqs.loop.defaults.iteration_seconds`; a model, not the clock, so that the same
  config selects the same strings on any machine);
- where the grown cap would hold most of the strings (``WHOLE_SHARE``) and the whole string
  space fits the budget, the next iteration takes all of it: FCI.

An explicit ``subspace.max_strings`` in the config is the user's fixed size: it grows only
with ``accuracy.grow: true`` (where it is the start); ``accuracy.grow: false`` fixes any cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hinqs.loop.defaults import SystemSize, iteration_seconds

STUCK_SHARE = 0.1  # grow when one more iteration at this cap gained less than this share of |E_PT2|
WHOLE_SHARE = 0.7  # a grown cap holding this share of the strings becomes the whole string space
LEVEL_ITERATIONS = 2  # iterations a grown cap needs at least (fill, then settle): its time is budgeted
MHA = 1000.0


@dataclass(frozen=True)
class BudgetSettings:
    """``accuracy.budget``: what the subspace may cost at most."""

    hours: float  # modelled loop time on ``cores`` cores
    cores: int
    determinants: int | None  # None: the batch cap of the diagonalisation


@dataclass(frozen=True)
class AccuracySettings:
    """``accuracy``: the error the loop aims for and how it grows its subspace to get there."""

    grow: bool | None  # None: only a derived cap grows
    target_mha: float
    growth_factor: float
    budget: BudgetSettings

    def grows(self, explicit_cap: bool) -> bool:
        """Whether the cap grows, given whether the config names it (``subspace.max_strings``)."""
        return (not explicit_cap) if self.grow is None else self.grow

    @property
    def target_ha(self) -> float:
        return self.target_mha / MHA


@dataclass(frozen=True)
class Ceiling:
    """The largest string cap the budget allows, and which limit sets it."""

    strings: int
    which: str  # "space" (every string), "determinants", "time" or "subspace.max_strings"
    detail: str


def largest_within_time(size: SystemSize, spent_s: float, budget: BudgetSettings) -> int:
    """The largest cap whose ``LEVEL_ITERATIONS`` more iterations fit what is left of the
    modelled time (0 when not even the smallest fits)."""
    left = budget.hours * 3600.0 - spent_s
    low, high = 0, size.n_strings
    while low < high:
        mid = (low + high + 1) // 2
        fits = LEVEL_ITERATIONS * iteration_seconds(size, mid, budget.cores) <= left
        low, high = (mid, high) if fits else (low, mid - 1)
    return low


def ceiling(size: SystemSize, spent_s: float, budget: BudgetSettings, determinants: int | None) -> Ceiling:
    """What the budget allows the next iteration's cap to be (the tightest of the limits);
    ``determinants``: the most a grown subspace may span (``RunSettings.growth_determinants``)."""
    limits = [Ceiling(size.n_strings, "space", f"all {size.n_strings:,} strings per spin")]
    if determinants:
        k = size.strings_within(determinants)
        limits.append(Ceiling(k, "determinants", f"{determinants:,} determinants allow {k:,} strings per spin"))
    k = largest_within_time(size, spent_s, budget)
    hours = f"{budget.hours:g} h on {budget.cores} cores (modelled, {spent_s:.0f} s spent)"
    limits.append(Ceiling(k, "time", f"{hours} allow {k:,} strings per spin"))
    return min(limits, key=lambda c: c.strings)


@dataclass(frozen=True)
class Growth:
    """The decision for the next iteration's cap."""

    cap: int  # the next iteration's cap (0: none)
    grown: bool
    blocked_by: Ceiling | None  # the limit that stopped growth, when the error asked for it


def next_cap(
    size: SystemSize,
    cap: int,
    settings: AccuracySettings,
    spent_s: float,
    determinants: int | None,
    *,
    fixed: bool,
) -> Growth:
    """The cap after this one, for a loop whose error asks to grow (the caller decides that).

    ``fixed``: the cap is the config's own (``subspace.max_strings``), which never grows.
    """
    if cap <= 0 or cap >= size.n_strings:  # no cap, or already every string: nothing to grow
        return Growth(cap, False, Ceiling(size.n_strings, "space", "the whole string space is in use"))
    if fixed:
        return Growth(cap, False, Ceiling(cap, "fixed cap", f"the config fixes {cap:,} strings per spin"))
    limit = ceiling(size, spent_s, settings.budget, determinants)
    wanted = math.ceil(cap * settings.growth_factor)
    if wanted >= WHOLE_SHARE * size.n_strings:
        wanted = size.n_strings
    new = min(wanted, limit.strings)
    if new <= cap:
        return Growth(cap, False, limit)
    return Growth(new, True, None)
