"""Size-scaled defaults: what a config left at ``null`` means for a given active space.

A chemist who writes only a geometry and a basis should get a chemically accurate answer.
What the loop needs for that depends on the system's size, not on the molecule, so the
settings below are derived from the active space (norb, N_alpha, N_beta) in this one place
(:func:`derive`, applied by :meth:`hinqs.loop.settings.RunSettings.for_system` with the ``norb``/
``nelec`` of the Hamiltonian's meta.json). An explicit value in the config always wins; only
``null`` is resolved.

The scale is the string space. SQD diagonalises in the product of alpha strings x beta
strings, so cost and accuracy are set by how many strings per spin the subspace holds:

- ``n_strings`` = C(norb, N_sigma), all strings of one spin (the larger of the two);
- ``n_sd`` = the Hartree-Fock string and its single and double same-spin excitations,
  1 + o*v + C(o,2)*C(v,2) (o occupied, v virtual orbitals of that spin). Products of two
  such strings hold every determinant up to quadruple excitations, which is where the
  correlation energy of a molecule near equilibrium lives.

The rule (``derive``):

``subspace.max_strings``  no cap when the FCI space has at most ``SMALL_SPACE`` determinants
    (it is then cheap to diagonalise all of it); otherwise
    min(ceil(1.5 * n_sd), floor(0.45 * n_strings), hour_strings, MAX_AUTO_STRINGS). 0.45 keeps the
    subspace (at most max_strings^2) under about 20 % of the FCI space; 1.5 * n_sd leaves
    room for the heaviest triple and quadruple excitations of the strings beyond SD. From
    ``LARGE_NORB`` (16) active orbitals on, the cap is also the largest K whose product
    space (K or all strings of each spin) stays within ``LARGE_SHARE`` (4.5 %) of the FCI
    space: the share of the FCI space that matters shrinks as the space grows, and a solve
    over a fifth of a 16-orbital space would cost as much as FCI itself. ``hour_strings``
    bounds it by time: the largest K whose loop fits an hour on a 2-core machine by a cost
    model measured at 52 qubits (2,800 for N2/cc-pVDZ; :func:`hour_strings`).
``subspace.expansion.strings``  ceil(K / 5) with K the cap (or n_strings without one): the cap
    fills in about five iterations, the rest of the run exchanges weak strings for better ones.
``nqs.samples``  20 * the FCI space (at most 100,000) without a cap, where sampling broadly
    finds the whole space; 4 * K with a cap, where the PT2 ranking decides what stays and
    the samples are proposals.
``sqd.samples_per_batch``  the whole subspace in one batch: max_strings^2 with a cap (no subspace
    under the cap can be larger), else the FCI space. One batch holding the whole (capped)
    subspace is what makes the energy non-increasing from one iteration to the next.
``nqs.d_model``  32 up to 16 active orbitals, 64 above (:func:`hinqs.nqs.settings.width_for`).
``subspace.expansion.top_strings`` and ``partner_strings``  the widest W of 256, 128, ..., 16
    whose scoring product, min(n_strings, W * n_exc) candidates x W partners (n_exc: single
    and double excitations of one string), stays within ``SCORE_BUDGET`` determinants; 16 at
    least. Measured (benchmarks/bench_ablation.py, 16 orbitals): four times the parents and
    twice the partners of the former 64/128 lowered E_var on C2, CN and stretched N2 beyond
    the spread over seeds, at about the same wall time (at 16 orbitals the candidates already
    span most of the string space). 256 up to 16 orbitals; 32 for 26 orbitals, 5 electrons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hinqs.nqs.settings import width_for

SMALL_SPACE = 100_000  # FCI determinants at or below which no string cap is derived
# The ceiling of the derived cap: the largest K whose loop fits LOOP_BUDGET_S on the reference
# 2-core machine (:func:`hour_strings`), calibrated at 26 orbitals with 5 + 5 electrons, where
# it gives 2,800 strings per spin (7.8 M determinants per batch). Each loop iteration costs
# ITERATION_OVERHEAD_S (sampling, selection, training, process starts) plus the Davidson and
# PT2 steps, which grow as K^COST_EXPONENT: measured on the 2-core VM at load 4-7 (commit
# af79ec1, benchmarks/n2_ccpvdz/README.md), 53 s and 116 s per iteration at K = 1,500, and
# H C grew 5.1x from 1,500 to 3,000 strings (docs/performance.md: 2^2.36). Other active
# spaces scale the solve cost by their single excitations per string (links per string).
LOOP_BUDGET_S = 3600.0
BUDGET_ITERATIONS = 6
ITERATION_OVERHEAD_S = 53.0
SOLVE_SECONDS_AT_REFERENCE = 116.0
REFERENCE_STRINGS = 1500
REFERENCE_SINGLES = 5 * 21  # N2/cc-pVDZ frozen core: 5 electrons x 21 empty orbitals per spin
REFERENCE_CORES = 2  # the reference machine's cores, which the measured seconds used
COST_EXPONENT = 2.36
STRING_STEP = 100  # the ceiling is rounded down to a multiple of this
# A hard ceiling over every system: what a scheduler's memory request can be sized for before
# prepare has read the system (hinqs.loop.workflow_support); the reference system's hour cap.
MAX_AUTO_STRINGS = 2800
SD_FACTOR = 1.5
SPACE_FRACTION = 0.45
FILL_ITERATIONS = 5
MAX_AUTO_SAMPLES = 100_000
LARGE_NORB = 16  # from this many active orbitals on, the product space is held to LARGE_SHARE
LARGE_SHARE = 0.045
SCORE_BUDGET = 2_500_000  # determinants in the expansion's scoring product (candidates x partners)
WIDEST, NARROWEST = 256, 16


@dataclass(frozen=True)
class SystemSize:
    """The numbers the defaults are scaled from."""

    norb: int
    nelec: tuple[int, int]

    @property
    def n_strings(self) -> int:
        """Strings of the spin with more of them (closed shells: both)."""
        return max(math.comb(self.norb, n) for n in self.nelec)

    @property
    def n_fci(self) -> int:
        """Determinants in the full CI space."""
        return math.comb(self.norb, self.nelec[0]) * math.comb(self.norb, self.nelec[1])

    def strings_within(self, determinants: float) -> int:
        """The largest cap K whose product space, min(K, C(norb, N_a)) x min(K, C(norb, N_b)), holds
        at most ``determinants`` (at least 1)."""
        counts = [math.comb(self.norb, n) for n in self.nelec]

        def product(k: int) -> int:
            return min(k, counts[0]) * min(k, counts[1])

        low, high = 1, max(counts)
        while low < high:  # largest k with product(k) <= determinants
            mid = (low + high + 1) // 2
            low, high = (mid, high) if product(mid) <= determinants else (low, mid - 1)
        return low

    @property
    def n_exc(self) -> int:
        """Single and double same-spin excitations of one string (the larger spin)."""
        return self.n_sd - 1

    def expansion_width(self) -> int:
        """Parents and partners of the expansion's scoring: the widest that fits ``SCORE_BUDGET``."""
        width = WIDEST
        while width > NARROWEST and min(self.n_strings, width * self.n_exc) * width > SCORE_BUDGET:
            width //= 2
        return width

    @property
    def n_sd(self) -> int:
        """HF string plus its single and double excitations (the larger spin)."""
        out = 0
        for n in self.nelec:
            # clamped: an impossible shape (more electrons than orbitals) is refused by the
            # step that reads it, with its own message; deriving must not fail first
            o, v = max(n, 0), max(self.norb - n, 0)
            out = max(out, 1 + o * v + math.comb(o, 2) * math.comb(v, 2))
        return out


def _singles(size: SystemSize) -> int:
    """Single excitations of one string (the larger spin): the solve's links per string."""
    return max(max(n, 1) * max(size.norb - n, 1) for n in size.nelec)


def iteration_seconds(size: SystemSize, strings: int, cores: int) -> float:
    """Modelled seconds of one loop iteration at ``strings`` strings per spin on ``cores`` cores
    of the reference machine: the fixed overhead plus the Davidson and PT2 steps, which grow as
    K^COST_EXPONENT, scale with the links per string and divide over the cores (the kernel's
    rows split evenly). A figure of the config alone, never of the machine running it."""
    solve = SOLVE_SECONDS_AT_REFERENCE * _singles(size) / REFERENCE_SINGLES
    solve *= (max(strings, 1) / REFERENCE_STRINGS) ** COST_EXPONENT
    return ITERATION_OVERHEAD_S + solve * REFERENCE_CORES / max(cores, 1)


def hour_strings(size: SystemSize) -> int:
    """The largest cap (a multiple of ``STRING_STEP``) whose ``BUDGET_ITERATIONS`` loop iterations
    fit ``LOOP_BUDGET_S`` on the reference 2-core machine, by the cost model above.

    A fixed figure of the config alone, never of the machine running it: the same config must
    select the same strings everywhere; a bigger machine runs the same loop faster.
    """
    per_iteration = LOOP_BUDGET_S / BUDGET_ITERATIONS - ITERATION_OVERHEAD_S
    solve_at_reference = SOLVE_SECONDS_AT_REFERENCE * _singles(size) / REFERENCE_SINGLES
    ratio = (per_iteration / solve_at_reference) ** (1.0 / COST_EXPONENT)
    return max(STRING_STEP, int(REFERENCE_STRINGS * ratio) // STRING_STEP * STRING_STEP)


@dataclass(frozen=True)
class Derived:
    """The values ``null`` stands for, for one system."""

    max_strings: int  # 0: no cap
    expansion_strings: int
    samples: int
    samples_per_batch: int
    d_model: int
    expansion_width: int  # subspace.expansion.top_strings and partner_strings


def derive(norb: int, nelec: tuple[int, int], max_strings: int | None = None) -> Derived:
    """The size-scaled settings of an active space (see the module docstring for the rule).

    ``max_strings`` is the config's explicit cap, if it gives one: the values scaled from the
    cap (samples, expansion strings, batch size) then follow that cap, not the derived one.
    """
    size = SystemSize(int(norb), (int(nelec[0]), int(nelec[1])))
    cap = derived_cap(size) if max_strings is None else int(max_strings)
    if cap == 0:
        scale = size.n_strings
        samples = min(MAX_AUTO_SAMPLES, 20 * size.n_fci)
        per_batch = size.n_fci
    else:
        scale = cap
        samples = min(MAX_AUTO_SAMPLES, 4 * cap)
        per_batch = cap * cap
    return Derived(
        max_strings=cap,
        expansion_strings=max(1, math.ceil(scale / FILL_ITERATIONS)),
        samples=max(1, samples),
        samples_per_batch=max(1, per_batch),
        d_model=width_for(size.norb),
        expansion_width=size.expansion_width(),
    )


def derived_cap(size: SystemSize) -> int:
    """The string cap (0: none, for a space of at most ``SMALL_SPACE``; the module docstring's rule)."""
    if size.n_fci <= SMALL_SPACE:
        return 0
    cap = min(
        math.ceil(SD_FACTOR * size.n_sd),
        math.floor(SPACE_FRACTION * size.n_strings),
        hour_strings(size),
        MAX_AUTO_STRINGS,
    )
    if size.norb >= LARGE_NORB:
        cap = min(cap, size.strings_within(LARGE_SHARE * size.n_fci))
    return cap
