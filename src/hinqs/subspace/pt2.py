"""The error bar of a variational energy: Epstein-Nesbet PT2 over the connected determinants.

A subspace ground state |Psi> = sum_i c_i |D_i> over the product space S_a x S_b misses the
determinants outside it. To second order each one, x, lowers the energy by
|<x|H|Psi>|^2 / (E_var - H_xx) (Epstein-Nesbet partitioning), and only determinants that H
connects to the subspace contribute: their alpha string is in S_a or is a single/double
excitation of a string of S_a (the *connected* strings C_a), and likewise for beta.

hinqs' kernel (:mod:`hinqs.kernel`) computes that sum row by row over the alpha strings
``S_a + C_a`` against every column ``S_b + C_b``, from Psi's own links, storing nothing of the
enlarged product's size. The rows partition the sum exactly, ``E_PT2 = sum_x R(x)``:

- **complete** (deterministic) when the connected product ``|S_a + C_a| x |S_b + C_b|`` is at
  most ``pt2.max_dimension``: every row, the EN-PT2 energy as selected-CI codes report it;
- **semistochastic** otherwise (:mod:`hinqs.subspace.strata`, CIPSI's scheme on rows): the
  cheap rows (Psi's own strings, and external strings that reach Psi only through a same-spin
  double) exactly; the others sorted by a proposal q(x), cut into strata of equal q-mass and
  drawn in proportion to q, each drawn row's R(x) exact and cached, until the 95 % interval
  is within ``pt2.relative_error`` of |E_PT2|. The proposal is x's EN-PT2 score against the
  ``PROPOSAL_PARTNERS`` heaviest other-spin strings and the single excitations of the
  heaviest (the expansion's scoring), mixed with the weight of x's parents in S
  (``PARENT_SHARE``), so that every row with a term has q > 0. Draws come from the run's
  named stream ``("pt2", iteration)``: a run is reproducible.

Over the ranks of an MPI communicator (the ``distributed`` executor) every rank computes a
share of each request's rows (:mod:`hinqs.subspace.pt2_ranks`): the same bits at any rank count.

E_var + E_PT2 is then much closer to the exact energy than E_var, and the linear fit of
E_var against E_PT2 over the iterations extrapolates to E_PT2 = 0 (:func:`extrapolate`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from hinqs.io.files import GroundState
from hinqs.subspace.excite import excitation_weights
from hinqs.subspace.pt2_ranks import RowDeal

PROPOSAL_PARTNERS = 8  # heaviest other-spin strings a connected string's proposal score is summed over
PROPOSAL_SINGLES_PARENTS = 1  # other-spin strings whose single excitations join those partners
PARENT_SHARE = 0.1  # share of the proposal spread by parent weight: no row with a term left at q = 0


@dataclass(frozen=True)
class PT2Estimate:
    """E_var and its EN-PT2 correction for one variational state (energies in Ha, with the core).

    ``e_pt2_error`` is the standard error of ``e_pt2`` and ``e_pt2_ci95`` the half-width of its
    95 % interval (Student's t with ``dof`` degrees of freedom); both 0 when ``complete``.
    ``rows`` are the alpha strings of the connected product (``product_shape``), of which
    ``rows_computed`` were summed exactly; ``external_determinants`` the terms of a complete sum.
    ``intruders``: connected determinants whose diagonal lies below E_var, counted in a complete
    sum and left out of it (their Epstein-Nesbet denominators change sign, and a correction
    with them says nothing: they are what the subspace misses, and the check never calls an
    iteration with intruders accurate); None for a sampled sum, which leaves them out too.
    """

    e_var: float
    e_pt2: float
    e_pt2_error: float
    e_pt2_ci95: float
    dof: float | None
    complete: bool
    rows: int
    rows_computed: int
    draws: int
    connected_strings: tuple[int, int]
    external_determinants: int | None
    intruders: int | None  # connected determinants below E_var, left out of the sum (None: sampled)
    product_shape: tuple[int, int]
    seconds: float

    @property
    def e_total(self) -> float:
        return self.e_var + self.e_pt2

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("product_shape", "connected_strings"):
            out[key] = list(out[key])
        return {**out, "e_total": self.e_total}


def connected_strings(strings: np.ndarray, weight: np.ndarray, norb: int) -> tuple[np.ndarray, np.ndarray]:
    """The strings H connects to ``strings`` from outside (their single and double excitations,
    ``strings`` excluded), sorted, and each one's parent weight: the summed ``weight`` of the
    strings it is excited from. Zero parent weight means no term through that spin's link.
    Compiled, a block of parents at a time (:mod:`hinqs.subspace.excite`)."""
    strings = np.asarray(strings, np.uint64)
    unique, mass = excitation_weights(strings, weight, norb)
    outside = ~np.isin(unique, strings)
    return unique[outside].astype(np.int64), mass[outside]


def proposal_scores(
    ham: Any, state: GroundState, connected: np.ndarray, parent_weight: np.ndarray, e_var: float
) -> np.ndarray:
    """The sampling weight of each connected alpha string: its EN-PT2 score against a few heavy
    partners, normalised, mixed with its parent weight. ``ham`` is the PT2's operator from the
    state into its connected strings; the scores use its alpha tables with the partners as the
    beta strings (:meth:`hinqs.kernel.ProductHamiltonian.with_beta`), the expansion's arithmetic
    (:func:`hinqs.subspace.expansion.scores_from`)."""
    from hinqs.subspace.expansion import _partner_columns, scores_from

    other = np.asarray(state.strs_b).astype(np.uint64)
    partners, partner_amps = _partner_columns(
        other, state.amplitudes, ham.norb, PROPOSAL_PARTNERS, singles_parents=PROPOSAL_SINGLES_PARENTS
    )
    scoring = ham.with_beta(partners)
    rows = np.searchsorted(scoring.alpha.targets, np.asarray(connected, np.int64))
    score, _ = scores_from(scoring.apply(partner_amps), scoring.diagonal(), rows, partners, e_var)
    mix = PARENT_SHARE * parent_weight / parent_weight.sum()
    if score.sum() > 0:
        return (1.0 - PARENT_SHARE) * score / score.sum() + mix
    return mix


N_STRATA = 32  # strata of the sampled rows: the heaviest turn exact after a few draws


def _variational_energy(ham: Any, state: GroundState) -> float:
    """<Psi|H|Psi> of the normalised state, electronic (one square product of the kernel)."""
    return float(np.vdot(state.amplitudes, ham.apply(state.amplitudes)))


def _row_proposal(ham: Any, state: GroundState, found, e_var: float) -> np.ndarray:
    """q of every alpha target row: the proposal of its string (connected rows), 0 for Psi's own."""
    strings, weight = found
    q = np.zeros(ham.shape[0])
    q[np.searchsorted(ham.alpha.targets, strings)] = proposal_scores(ham, state, strings, weight, e_var)
    return q


@dataclass(frozen=True)
class _Problem:
    """A normalised, sorted state, its connected strings per spin and the kernel from it into them."""

    state: GroundState
    found: list[tuple[np.ndarray, np.ndarray]]  # per spin: connected strings with a parent, their parent weight
    ham: Any  # hinqs.kernel.ProductHamiltonian from the state's strings into state + connected strings
    e_var: float  # electronic
    device_rows: Any = None  # the rows on a torch device (hinqs.kernel.torch_kernel.TorchPT2Rows)

    @classmethod
    def build(
        cls, hcore, eri, ecore, nelec, strs_a, strs_b, amplitudes, energy: float | None, device: Any = None
    ) -> _Problem:
        from hinqs.kernel import ProductHamiltonian

        sa, sb = np.asarray(strs_a).astype(np.int64), np.asarray(strs_b).astype(np.int64)
        amps = np.asarray(amplitudes, np.float64).reshape(len(sa), len(sb))
        # sorted strings for the kernel (no copy where they are), then one normalised copy:
        # with the caller's, two state-sized arrays are all the step holds (16 B per determinant)
        state = GroundState(sa, sb, amps).sorted()
        state = replace(state, amplitudes=state.amplitudes / np.linalg.norm(state.amplitudes))
        found = []
        for own, weight in zip((state.strs_a, state.strs_b), state.string_weights(), strict=True):
            strings, parent = connected_strings(own, weight, hcore.shape[0])
            found.append((strings[parent > 0], parent[parent > 0]))
        targets = [np.union1d(np.asarray(own, np.int64), c) for own, (c, _) in zip((sa, sb), found, strict=True)]
        ham = ProductHamiltonian(hcore, eri, nelec, state.strs_a, state.strs_b, targets[0], targets[1])
        if energy is None:
            e_var = _variational_energy(ProductHamiltonian(hcore, eri, nelec, state.strs_a, state.strs_b), state)
        else:
            e_var = energy - ecore
        device_rows = None
        if device is not None:
            from hinqs.kernel import torch_kernel
            from hinqs.kernel.device_memory import WORK_MB, pt2_device_need

            need = pt2_device_need(ham.source_shape, ham.shape, ham.norb, ham.nelec, WORK_MB["cuda"])
            torch_kernel.prepare_device(device, ham.shape, need)
            device_ham = torch_kernel.TorchProductHamiltonian(ham, eri, device)
            device_rows = torch_kernel.TorchPT2Rows(device_ham, state.amplitudes, e_var, ham._jvec, ham.beta.occ)
        return cls(state, found, ham, e_var, device_rows)

    def rows(self, deal: RowDeal, rows: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Exact row sums, term counts and intruder counts (connected determinants below E_var)
        of the given alpha target rows, or of all (then each pair of determinants once where the
        state is a symmetric singlet's: :meth:`hinqs.kernel.ProductHamiltonian.pt2_rows`), dealt
        over ``deal``'s ranks (collective). On a torch device every row sums all of its columns
        (:class:`hinqs.kernel.torch_kernel.TorchPT2Rows`)."""
        paired = rows is None
        wanted = np.arange(self.ham.shape[0]) if rows is None else rows

        def compute(mine: np.ndarray) -> tuple[np.ndarray, ...]:
            if self.device_rows is not None:
                return self.device_rows(mine)
            return self.ham.pt2_rows(self.state.amplitudes, self.e_var, mine, paired=paired)

        return deal.compute(wanted, compute)


def _sampled(problem: _Problem, relative_error, rng, report, start, deal: RowDeal) -> Any:
    """The semistochastic sum: Psi's own rows and rows without single links exactly, the rest by strata."""
    from hinqs.subspace.strata import stratified_sum

    if rng is None:
        raise ValueError("a sampled PT2 needs a random stream")
    ham = problem.ham
    q = _row_proposal(ham, problem.state, problem.found[0], problem.e_var)
    cheap = np.flatnonzero((ham.alpha.ident >= 0) | (np.diff(ham.alpha.tables.lptr) == 0))
    if report:
        report(
            f"pt2: {ham.shape[0]:,} x {ham.shape[1]:,} strings, {len(cheap):,} rows exact, "
            f"proposal {time.perf_counter() - start:.0f} s"
        )
    return stratified_sum(
        q, lambda rows: problem.rows(deal, rows)[0], relative_error, rng, n_strata=N_STRATA, always=cheap, report=report
    )


def en_pt2(
    hcore: np.ndarray,
    eri: np.ndarray,
    ecore: float,
    nelec: tuple[int, int],
    strs_a: np.ndarray,
    strs_b: np.ndarray,
    amplitudes: np.ndarray,
    max_dimension: int,
    *,
    relative_error: float,
    rng: np.random.Generator | None = None,
    report: Callable[[str], None] | None = None,
    energy: float | None = None,
    deal: RowDeal | None = None,
    device: Any = None,
) -> PT2Estimate:
    """EN-PT2 of the state ``amplitudes`` over ``strs_a x strs_b`` (CI strings).

    Complete when the connected product fits ``max_dimension``; otherwise semistochastic to
    a 95 % interval of ``relative_error`` |E_PT2|, drawing from ``rng`` (required then).
    ``report`` gets progress lines. ``energy`` is the state's total energy when known (the
    solver's, in state.npz): the denominators' reference without one more H|Psi>. ``deal``
    shares the rows among MPI ranks (collective: every rank calls this, each returns the same
    estimate); give ``report`` on one rank only. ``device`` (a ``torch.device``): the rows are
    summed there by the torch kernel, to float rounding of the numba rows' sums.
    """
    deal = deal or RowDeal()
    start = time.perf_counter()
    hcore, eri = np.asarray(hcore, np.float64), np.asarray(eri, np.float64)
    problem = _Problem.build(hcore, eri, ecore, nelec, strs_a, strs_b, amplitudes, energy, device)
    shape = problem.ham.shape
    complete = shape[0] * shape[1] <= max_dimension
    estimate, n_terms, intruders = None, None, None
    if complete:
        sums, counts, below = problem.rows(deal)
        e_pt2, n_terms, intruders = float(np.sum(sums)), int(np.sum(counts)), int(np.sum(below))
    else:
        estimate = _sampled(problem, relative_error, rng, report, start, deal)
        e_pt2 = estimate.value
    return PT2Estimate(
        e_var=problem.e_var + ecore,
        e_pt2=e_pt2,
        e_pt2_error=0.0 if estimate is None else estimate.standard_error,
        e_pt2_ci95=0.0 if estimate is None else estimate.half_width,
        dof=None if estimate is None else estimate.dof,
        complete=complete,
        rows=shape[0],
        rows_computed=shape[0] if estimate is None else estimate.computed,
        draws=0 if estimate is None else estimate.draws,
        connected_strings=(len(problem.found[0][0]), len(problem.found[1][0])),
        external_determinants=n_terms,
        intruders=intruders,
        product_shape=shape,
        seconds=time.perf_counter() - start,
    )


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float | None]:
    """Least-squares line y = a + b x: intercept, slope and the intercept's standard error from
    the residuals (None with two points: a line through two points has no scatter)."""
    slope, intercept = np.polyfit(x, y, 1)
    if len(x) < 3:
        return float(intercept), float(slope), None
    residual = y - (intercept + slope * x)
    sigma2 = float(residual @ residual) / (len(x) - 2)
    sxx = float(((x - x.mean()) ** 2).sum())
    return float(intercept), float(slope), math.sqrt(sigma2 * (1.0 / len(x) + x.mean() ** 2 / sxx))


def bracket(e_var: float, e_pt2: float, half_width: float = 0.0, residual: float = 0.0) -> tuple[float, float] | None:
    """Where the exact energy lies, as far as one variational energy and its PT2 can say.

    The top is E_var, a variational upper bound. The bottom is E_var + 2 E_PT2 (less the PT2's
    sampling half-width): the estimate E_var + E_PT2 with its own size as the error, which holds
    while the second-order correction recovers at least half of what the subspace misses (in
    the perturbative regime it recovers most of it), less the Davidson's residual norm
    ``residual``: E_var is the Rayleigh quotient of a vector, and the subspace's eigenvalue
    lies within the residual of it (Weinstein's bound). Without that term a whole-space solve
    (E_PT2 = 0) gave an interval of one point, 1.6e-10 Ha above the FCI it had reached (H12).
    None for a positive E_PT2, which says only that the Epstein-Nesbet denominators changed sign."""
    if e_pt2 > 0:
        return None
    return e_var + 2.0 * e_pt2 - half_width - residual, e_var


LINEAR_RANGE = 4.0  # points with |E_PT2| within this factor of the smallest are in the linear regime
MIN_POINTS = 3


def _linear_regime(x: np.ndarray) -> np.ndarray:
    """Indices of the points near E_PT2 = 0: |E_PT2| at most ``LINEAR_RANGE`` times the smallest.

    E_var is linear in E_PT2 only where the correction is small (CIPSI fits its last points); far
    points (a subspace that grew by half its strings between them, a strongly correlated state
    at 80 mHa) curve the line and put the intercept mHa off. Measured before this rule: a
    12-atom H chain extrapolated to -11.7 +- 3.7 mHa from points at 40-100 mHa."""
    size = np.abs(x)
    return np.flatnonzero(size <= LINEAR_RANGE * size.min())


def _model_error(x: np.ndarray, y: np.ndarray, intercept: float) -> float:
    """How far the intercept moves if the line is allowed to curve (a quadratic through the same
    points): the part of the uncertainty that a straight fit's own scatter cannot show."""
    if len(x) < MIN_POINTS:
        return 0.0
    quadratic = np.polyfit(x, y, 2)
    return abs(float(quadratic[-1]) - intercept)


def extrapolate(
    e_var: list[float], e_pt2: list[float], e_pt2_error: list[float] | None = None
) -> dict[str, Any] | None:
    """Linear fit E_var = a + b E_PT2 over the points in the linear regime, read at E_PT2 = 0.

    Only the points near E_PT2 = 0 (:func:`_linear_regime`), at least ``MIN_POINTS`` of them;
    None otherwise, None when a point already has E_PT2 = 0 (its E_var is the answer), and
    None when the uncertainty is no smaller than the nearest point's |E_PT2| (that point's
    E_var + E_PT2 then says as much: measured on H2O/6-31G at 120 strings, +0.050 +- 15.2 mHa
    from points whose PT2 is 0.6 mHa).
    Three sources of uncertainty, all in ``uncertainty`` (added in quadrature): ``spread``, the
    intercept's standard error from the fit's residuals; ``propagated``, how far the intercept
    moves with each point's PT2 standard error (``e_pt2_error``; 0 for complete sums); and
    ``model``, how far it moves when the line may curve (:func:`_model_error`). ``basis`` says
    which of them it holds.
    """
    x, y = np.asarray(e_pt2, np.float64), np.asarray(e_var, np.float64)
    if len(x) < MIN_POINTS or np.ptp(x) < 1e-12 or np.min(np.abs(x)) == 0.0:
        return None
    regime = _linear_regime(x)
    if len(regime) < MIN_POINTS:
        return None
    errors = np.zeros(len(x)) if e_pt2_error is None else np.nan_to_num(np.asarray(e_pt2_error, np.float64))
    x, y, errors = x[regime], y[regime], errors[regime]
    if np.ptp(x) < 1e-12:
        return None
    intercept, slope, spread = _fit(x, y)
    shifts = []
    for i, sigma in enumerate(errors):
        if sigma > 0:
            moved = x.copy()
            moved[i] += sigma
            shifts.append(_fit(moved, y)[0] - intercept)
    propagated = math.sqrt(sum(d * d for d in shifts))
    model = _model_error(x, y, intercept)
    named = (("fit scatter", spread), ("PT2 sampling", propagated), ("curvature", model))
    parts = [v for _, v in named if v]
    uncertainty = math.sqrt(sum(v * v for v in parts)) if parts else None
    if uncertainty is not None and uncertainty >= np.min(np.abs(x)):
        return None  # no better than the nearest point's own E_var + E_PT2: nothing to report
    return {
        "energy": intercept,
        "slope": slope,
        "spread": spread,
        "propagated": propagated,
        "model": model,
        "uncertainty": uncertainty,
        "basis": " and ".join(n for n, v in named if v) or "none",
        "points": len(x),
    }
