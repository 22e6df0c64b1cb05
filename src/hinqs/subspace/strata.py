"""A sum over many exactly computable terms, estimated from a few of them: stratified sampling.

The EN-PT2 correction is a sum of row contributions R(x), one per external alpha string x,
each exact but costly. Selected-CI codes estimate such sums semistochastically (CIPSI's
"comb", Garniron et al. 2017; SHCI's semistochastic PT2): the heavy terms exactly, the tail
by sampling in proportion to a cheap proposal q(x) that tracks |R(x)|. Here the terms,
sorted by q, are cut into strata of equal q-mass; stratum h is estimated by
``mean_i R(x_i) / w(x_i)`` over draws ``x_i ~ w`` within it (with replacement; ``w`` is q
normalised over the stratum), with variance ``var(R/w) / n_h``. A stratum whose every term has been computed is exact
(its terms are cached), so the heaviest strata, a term or a few each, turn deterministic
after their first draws and the error falls faster than 1/sqrt(draws). Draws continue,
one per open stratum per round, until the 95 % interval (Student's t with the
Welch-Satterthwaite degrees of freedom) is within the requested error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MIN_DRAWS = 5  # first draws per open stratum: fewer let the sequential stop under-cover (88 % seen at 3)


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
    """One stratum: its terms, their proposal, the draws so far and the cached exact terms."""

    def __init__(self, members: np.ndarray, q: np.ndarray) -> None:
        self.members = members
        self.weights = q[members] / q[members].sum()
        self.drawn: list[int] = []

    def exact(self, cache: dict[int, float]) -> bool:
        return all(int(m) in cache for m in self.members)

    def estimate(self, cache: dict[int, float]) -> tuple[float, float, int]:
        """Value, variance and draws (variance 0 when exact)."""
        if self.exact(cache):
            return float(sum(cache[int(m)] for m in self.members)), 0.0, len(self.drawn)
        ratios = np.array([cache[m] / w for m, w in self.drawn_with_weights()]) * 1.0
        value = float(np.mean(ratios))
        variance = float(np.var(ratios, ddof=1) / len(ratios)) if len(ratios) > 1 else math.inf
        return value, variance, len(ratios)

    def drawn_with_weights(self) -> list[tuple[int, float]]:
        lookup = dict(zip(self.members.tolist(), self.weights.tolist(), strict=True))
        return [(m, lookup[m]) for m in self.drawn]


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
    cache: dict[int, float] = {}
    if always is not None and len(always):
        cache.update(zip(always.tolist(), compute(always).tolist(), strict=True))
    sampled = np.flatnonzero((q > 0) & ~np.isin(np.arange(len(q)), list(cache)))
    base = float(sum(cache.values()))
    groups = [_Stratum(sampled[part], q) for part in strata_of(q[sampled], n_strata)] if len(sampled) else []
    rounds, result = 0, None
    while True:
        open_groups = [g for g in groups if not g.exact(cache)]
        if not open_groups:
            break
        for g in open_groups:
            g.drawn.extend(int(m) for m in rng.choice(g.members, size=MIN_DRAWS if not g.drawn else 1, p=g.weights))
        new = np.array(sorted({m for g in open_groups for m in g.drawn} - cache.keys()), dtype=np.int64)
        if len(new):
            cache.update(zip(new.tolist(), compute(new).tolist(), strict=True))
        rounds += 1
        result = _combine(base, groups, cache, rounds, len(q))
        if report and (rounds <= 3 or rounds % 10 == 0):
            report(f"pt2 round {rounds}: {result.value:.8e} +- {result.half_width:.2e} Ha (95 %), {len(cache):,} rows")
        if result.half_width <= relative_error * abs(result.value):
            return result
    return _combine(base, groups, cache, rounds, len(q))


def _combine(base: float, groups: list[_Stratum], cache: dict[int, float], rounds: int, terms: int) -> StratifiedSum:
    value, variance, parts, draws = base, 0.0, [], 0
    for g in groups:
        v, var, n = g.estimate(cache)
        draws += n
        value += v
        if not g.exact(cache):
            variance += var
            parts.append((var, n))
    if variance == 0.0:
        return StratifiedSum(value, 0.0, 0.0, None, draws, len(cache), terms, rounds)
    if not math.isfinite(variance):
        return StratifiedSum(value, math.inf, math.inf, None, draws, len(cache), terms, rounds)
    dof = variance**2 / sum(v * v / (n - 1) for v, n in parts)
    se = math.sqrt(variance)
    return StratifiedSum(value, se, t_quantile_975(dof) * se, dof, draws, len(cache), terms, rounds)
