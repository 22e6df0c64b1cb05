"""The error bar of a variational energy: Epstein-Nesbet PT2 over the connected determinants.

A subspace ground state |Psi> = sum_i c_i |D_i> over the product space S_a x S_b misses the
determinants outside it. To second order each one, a, lowers the energy by
|<a|H|Psi>|^2 / (E_var - H_aa) (Epstein-Nesbet partitioning), and only determinants that H
connects to the subspace contribute. Those are singly or doubly excited from some D_i, so
their alpha string lies in S_a or among the single/double excitations of S_a, and likewise
for beta: every one of them is in the product space T_a x T_b of the extended string sets.

That product structure is what PySCF's selected-CI kernels work in, so the whole correction
is one ``contract_2e`` (H|Psi> with Psi embedded, zeros outside S_a x S_b) and one
``make_hdiag`` over T_a x T_b: exact matrix elements, no sampling, deterministic.

- **complete**: when T_a x T_b (all connected strings, or all strings of the orbital space)
  fits ``max_dimension`` the sum runs over every connected determinant: the EN-PT2 energy
  of the state, as selected-CI codes report it.
- **screened**: otherwise T_sigma is S_sigma plus the excitations of the heaviest strings
  (by marginal weight |c|^2), taken parent by parent until the budget is spent. The sum
  then misses the determinants built from the excitations of light strings, so the
  correction is smaller in magnitude than the full one; ``complete`` is false and the
  number of external determinants is recorded.

E_var + E_PT2 is then much closer to the exact energy than E_var, and the linear fit of
E_var against E_PT2 over the iterations extrapolates to E_PT2 = 0 (:func:`extrapolate`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hinqs.io.files import GroundState

PARENT_CHUNK = 16  # parents whose excitations are generated per round when screening


@dataclass(frozen=True)
class PT2Estimate:
    """E_var and its EN-PT2 correction for one variational state (energies in Ha, with the core)."""

    e_var: float
    e_pt2: float
    complete: bool
    external_determinants: int
    product_shape: tuple[int, int]
    seconds: float

    @property
    def e_total(self) -> float:
        return self.e_var + self.e_pt2

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "product_shape": list(self.product_shape), "e_total": self.e_total}


def _all_strings(norb: int, n: int) -> np.ndarray:
    from pyscf.fci import cistring

    return np.asarray(cistring.make_strings(range(norb), n), dtype=np.int64)


def _extended(strings: np.ndarray, weight: np.ndarray, norb: int, n: int, size: int) -> tuple[np.ndarray, bool]:
    """S plus external strings up to ``size`` strings in all; True when every connected string fits."""
    from hinqs.subspace.expansion import excitations

    if size >= math.comb(norb, n):
        return _all_strings(norb, n), True
    chosen = [np.asarray(strings, np.int64)]
    have = np.asarray(strings, np.int64)
    room = size - len(have)
    parents = np.asarray(strings)[np.argsort(-weight, kind="stable")]
    for start in range(0, len(parents), PARENT_CHUNK):
        if room <= 0:
            return np.sort(np.concatenate(chosen)), False
        batch = parents[start : start + PARENT_CHUNK].astype(np.uint64)
        new = np.setdiff1d(excitations(batch, norb).astype(np.int64), have)
        if len(new) > room:
            chosen.append(new[:room])
            return np.sort(np.concatenate(chosen)), False
        chosen.append(new)
        have = np.union1d(have, new)
        room -= len(new)
    return np.sort(np.concatenate(chosen)), True


def _string_budgets(n_a: int, n_b: int, norb: int, nelec: tuple[int, int], max_dimension: int) -> tuple[int, int]:
    """Strings per spin for the extended space: both grown by the same factor, and a spin
    whose every string fits leaves the rest of the budget to the other (open shells: the
    minority spin's few strings saturate first, e.g. 253 beta strings of triplet CH2)."""
    total_a, total_b = math.comb(norb, nelec[0]), math.comb(norb, nelec[1])
    scale = math.sqrt(max_dimension / (n_a * n_b))
    size_a, size_b = min(total_a, int(n_a * scale)), min(total_b, int(n_b * scale))
    if size_b == total_b:
        size_a = min(total_a, max_dimension // total_b)
    elif size_a == total_a:
        size_b = min(total_b, max_dimension // total_a)
    return size_a, size_b


def _index(sub: np.ndarray, full: np.ndarray) -> np.ndarray:
    return np.searchsorted(full, sub)


def en_pt2(
    hcore: np.ndarray,
    eri: np.ndarray,
    ecore: float,
    nelec: tuple[int, int],
    strs_a: np.ndarray,
    strs_b: np.ndarray,
    amplitudes: np.ndarray,
    max_dimension: int,
) -> PT2Estimate | None:
    """EN-PT2 of the state ``amplitudes`` over ``strs_a x strs_b`` (sorted CI strings).

    ``max_dimension`` bounds the extended product space (memory: about 40 bytes per
    determinant). None when not even the variational space fits it.
    """
    from pyscf.fci import direct_spin1, selected_ci

    start = time.perf_counter()
    hcore, eri = np.asarray(hcore, np.float64), np.asarray(eri, np.float64)
    norb = hcore.shape[0]
    sa, sb = np.asarray(strs_a).astype(np.int64), np.asarray(strs_b).astype(np.int64)
    amps = np.asarray(amplitudes, np.float64).reshape(len(sa), len(sb))
    amps = amps / np.linalg.norm(amps)
    if len(sa) * len(sb) > max_dimension:
        return None
    size_a, size_b = _string_budgets(len(sa), len(sb), norb, nelec, max_dimension)
    prob = amps**2
    ta, complete_a = _extended(sa, prob.sum(axis=1), norb, nelec[0], size_a)
    tb, complete_b = _extended(sb, prob.sum(axis=0), norb, nelec[1], size_b)
    strs = (ta, tb)
    psi = GroundState(sa, sb, amps).on(ta, tb)
    rows, cols = _index(sa, ta), _index(sb, tb)
    myci = selected_ci.SelectedCI()
    h2e = direct_spin1.absorb_h1e(hcore, eri, norb, nelec, 0.5)
    link = selected_ci._all_linkstr_index(strs, norb, nelec)
    hpsi = np.asarray(myci.contract_2e(h2e, selected_ci._as_SCIvector(psi, strs), norb, nelec, link))
    hpsi = hpsi.reshape(psi.shape)
    e_var = float(np.vdot(psi, hpsi))
    hdiag = np.asarray(myci.make_hdiag(hcore, eri, strs, norb, nelec)).reshape(psi.shape)
    inside = np.zeros(psi.shape, bool)
    inside[np.ix_(rows, cols)] = True
    numerator = hpsi[~inside] ** 2
    denominator = e_var - hdiag[~inside]
    keep = (numerator > 0) & (np.abs(denominator) > 1e-10)
    e_pt2 = float(np.sum(numerator[keep] / denominator[keep]))
    return PT2Estimate(
        e_var=e_var + ecore,
        e_pt2=e_pt2,
        complete=bool(complete_a and complete_b),
        external_determinants=int(np.count_nonzero(keep)),
        product_shape=(len(ta), len(tb)),
        seconds=time.perf_counter() - start,
    )


def extrapolate(e_var: list[float], e_pt2: list[float]) -> dict[str, Any] | None:
    """Linear fit E_var = a + b E_PT2 over the iterations, read at E_PT2 = 0 (selected-CI style).

    ``spread`` is the standard error of the intercept from the fit's residuals (None with
    fewer than three points); ``energy`` is None when the PT2 values do not vary.
    """
    x, y = np.asarray(e_pt2, np.float64), np.asarray(e_var, np.float64)
    if len(x) < 2 or np.ptp(x) < 1e-12:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    spread = None
    if len(x) >= 3:
        residual = y - (intercept + slope * x)
        sigma2 = float(residual @ residual) / (len(x) - 2)
        sxx = float(((x - x.mean()) ** 2).sum())
        spread = math.sqrt(sigma2 * (1.0 / len(x) + x.mean() ** 2 / sxx))
    return {"energy": float(intercept), "slope": float(slope), "spread": spread, "points": len(x)}
