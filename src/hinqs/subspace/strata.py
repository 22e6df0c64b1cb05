"""A sum over many exactly computable terms, estimated from a few of them: stratified sampling.

The EN-PT2 correction is a sum of row contributions R(x), one per external alpha string x,
each exact but costly. Selected-CI codes estimate such sums semistochastically (CIPSI's
"comb", Garniron et al. 2017; SHCI's semistochastic PT2): the heavy terms exactly, the tail
by sampling in proportion to a cheap proposal q(x) that tracks |R(x)|. Here the terms,
sorted by q, are cut into strata of equal q-mass; stratum h is estimated by
``mean_i R(x_i) / w(x_i)`` over draws ``x_i ~ w`` within it (with replacement; ``w`` is q
normalised over the stratum), with variance ``var(R/w) / n_h``. A stratum whose every term
has been computed is exact (its terms are cached), so the heaviest strata, a term or a few
each, turn deterministic after their first draws and the error falls faster than
1/sqrt(draws). Each round adds a quarter more draws to every open stratum, until the 95 %
interval (Student's t with the Welch-Satterthwaite degrees of freedom) is within the
requested error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MIN_DRAWS = 5  # first draws per open stratum: fewer let the sequential stop under-cover (88 % seen at 3)
GROWTH = 0.25  # each round adds this share of a stratum's draws (at least one)


@dataclass(frozen=True)
class StratifiedSum:
    """An estimate of ``sum_x R(x)`` and its 95 % interval half-width (0: every stratum exact)."""

    value: float
    standard_error: float
    half_width: float
    dof: float | None  # Welch-Satterthwaite degrees of freedom (None when exact)
    draws: int
    computed: int  # distinct terms computed
    terms: int
    rounds: int


def strata_of(q: np.ndarray, n_strata: int) -> list[np.ndarray]:
    """Indices of ``q`` (positive), heaviest first, cut into at most ``n_strata`` groups of equal q-mass."""
    order = np.argsort(-q, kind="stable")
    edges = np.searchsorted(np.cumsum(q[order]) / q.sum(), np.arange(1, n_strata) / n_strata, side="right")
    return [part for part in np.split(order, np.unique(edges)) if len(part)]


def t_quantile_975(dof: float) -> float:
    """Student's t two-sided 95 % quantile (normal for infinite degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.975, dof)) if math.isfinite(dof) else 1.959963984540054


class _Stratum:
    """One stratum: its terms and their weights, the running sums of its draws' R/w, and how many
    of its terms are still uncomputed (0: the stratum is exact)."""

    def __init__(self, members: np.ndarray, q: np.ndarray) -> None:
        self.members = members
        self.weights = q[members] / q[members].sum()
        self.draws = 0
        self.total = 0.0
        self.squares = 0.0
        self.missing = len(members)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Positions (within the stratum) of this round's draws."""
        size = MIN_DRAWS if self.draws == 0 else max(1, int(GROWTH * self.draws))
        return rng.choice(len(self.members), size=size, p=self.weights)

    def add(self, positions: np.ndarray, values: np.ndarray) -> None:
        ratios = values / self.weights[positions]
        self.draws += len(ratios)
        self.total += float(ratios.sum())
        self.squares += float(ratios @ ratios)

    def estimate(self, exact_sum: float) -> tuple[float, float]:
        """Value and variance (0 when exact: ``exact_sum`` is the sum of its cached terms)."""
        if self.missing == 0:
            return exact_sum, 0.0
        mean = self.total / self.draws
        variance = max(self.squares / self.draws - mean * mean, 0.0) * self.draws / (self.draws - 1)
        return mean, variance / self.draws


def stratified_sum(
    q: np.ndarray,
    compute: Callable[[np.ndarray], np.ndarray],
    relative_error: float,
    rng: np.random.Generator,
    *,
    n_strata: int,
    always: np.ndarray | None = None,
    report: Callable[[str], None] | None = None,
) -> StratifiedSum:
    """Estimate ``sum_x R(x)`` for the terms with proposal ``q > 0``; ``compute(indices)`` returns
    their exact R. ``always`` (indices) are computed exactly up front whatever their q; terms
    with q = 0 must have R = 0 (the proposal's support covers every nonzero term).
    """
    q = np.asarray(q, dtype=np.float64)
    value = np.full(len(q), np.nan)  # cached exact terms
    always = np.zeros(0, np.int64) if always is None else np.asarray(always, np.int64)
    if len(always):
        value[always] = compute(always)
    base = float(value[always].sum()) if len(always) else 0.0
    sampled = np.flatnonzero((q > 0) & np.isnan(value))
    groups = [_Stratum(sampled[part], q) for part in strata_of(q[sampled], n_strata)] if len(sampled) else []
    rounds, result = 0, None
    while any(g.missing for g in groups):
        picks = [(g, g.draw(rng)) for g in groups if g.missing]
        wanted = np.unique(np.concatenate([g.members[p] for g, p in picks]))
        new = wanted[np.isnan(value[wanted])]
        if len(new):
            value[new] = compute(new)
        for g, positions in picks:
            g.add(positions, value[g.members[positions]])
            g.missing = int(np.isnan(value[g.members]).sum())
        rounds += 1
        result = _combine(base, groups, value, rounds, len(q))
        if report and (rounds <= 3 or rounds % 5 == 0):
            report(
                f"pt2 round {rounds}: {result.value:.8e} +- {result.half_width:.2e} Ha (95 %), {result.computed:,} rows"
            )
        if result.half_width <= relative_error * abs(result.value):
            return result
    return _combine(base, groups, value, rounds, len(q))


def _combine(base: float, groups: list[_Stratum], value: np.ndarray, rounds: int, terms: int) -> StratifiedSum:
    total, variance, parts, draws = base, 0.0, [], 0
    for g in groups:
        v, var = g.estimate(float(value[g.members].sum()) if g.missing == 0 else 0.0)
        draws += g.draws
        total += v
        if g.missing:
            variance += var
            parts.append((var, g.draws))
    computed = int(np.count_nonzero(~np.isnan(value)))
    if variance == 0.0:
        return StratifiedSum(total, 0.0, 0.0, None, draws, computed, terms, rounds)
    dof = variance**2 / sum(v * v / (n - 1) for v, n in parts)
    se = math.sqrt(variance)
    return StratifiedSum(total, se, t_quantile_975(dof) * se, dof, draws, computed, terms, rounds)
