"""Reference energies for a prepared Hamiltonian: HF, CCSD, CCSD(T), FCI (CASCI) and selected CI.

Past the reach of FCI (N2/cc-pVDZ with a frozen core: 4.3e9 determinants) the references
are CCSD(T) and PySCF's selected CI run at decreasing ``select_cutoff``; every cutoff's
energy, subspace size and seconds are recorded so that the convergence (and a crude
extrapolation to cutoff 0) is visible in meta.json. :func:`best_reference` picks the one
a run's error is quoted against: FCI, else the tightest selected CI, else CCSD(T).

All are computed from the active-space integrals themselves, through a mean-field object
built on them. That keeps one code path for geometry and FCIDUMP input, and makes every
reference an energy of exactly the Hamiltonian the run diagonalises (for a frozen core or
a CAS, CCSD here equals PySCF's CCSD with the same orbitals frozen).
"""

from __future__ import annotations

import io
import math
import re
import time
from typing import Any

import numpy as np

from hinqs.chem.fci import fci_energy
from hinqs.chem.mean_field import Solution, restricted_mean_field
from hinqs.deadline import time_limit

# A selected-CI series whose last cutoff step moved the energy by less than this (mHa) is
# taken as converged enough to be the reference (chemical accuracy).
SCI_CONVERGED_MHA = 1.6


def n_determinants(norb: int, nelec: tuple[int, int]) -> int:
    """Size of the full CI space of the active space."""
    return math.comb(norb, nelec[0]) * math.comb(norb, nelec[1])


class _OutOfTime(Exception):
    """The selected-CI series ran out of its seconds (raised from the SIGALRM handler)."""


def sci_series(
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    ecore: float,
    cutoffs: list[float],
    max_seconds: float,
) -> dict[str, Any]:
    """PySCF selected CI at each cutoff (tightest last), each warm-started from the previous vector.

    The series gets ``max_seconds`` in all: the cutoff running when they are spent is
    abandoned (``abandoned`` records it; the points before it stand), so a large system
    whose first cutoff alone would take an hour costs ``prepare`` no more than that (measured:
    the default 2e-3 on N2/cc-pVDZ, 52 qubits, ran past 13 minutes). The limit needs the main
    thread (a SIGALRM timer); elsewhere the series stops after the cutoff that passes it. The
    abandoned cutoff's last finished selection cycle is recorded as ``partial`` (its energy a
    variational upper bound of a space the cutoff had not finished growing), so seconds spent
    never leave nothing behind (the [2Fe-2S] model spent 900 s on its first cutoff). The
    variational energies decrease towards FCI; ``extrapolated`` is
    the straight line through the two tightest points evaluated at cutoff 0 -- a rough guide
    to the remaining error, not a reference (selected-CI errors are not linear in the cutoff).
    """
    from pyscf import fci
    from pyscf.lib import logger

    norb = hcore.shape[0]
    points: list[dict[str, Any]] = []
    ci0 = None
    total = 0.0
    abandoned = partial = None
    for cutoff in sorted((float(c) for c in cutoffs), reverse=True):
        start = time.perf_counter()
        solver = fci.SelectedCI()
        solver.select_cutoff = cutoff
        solver.ci_coeff_cutoff = cutoff
        solver.conv_tol = 1e-9
        solver.verbose = logger.DEBUG  # its cycle lines are the partial point of an abandoned cutoff
        solver.stdout = log = io.StringIO()
        try:
            with time_limit(max_seconds - total, _OutOfTime):
                energy, vec = solver.kernel(np.asarray(hcore), np.asarray(eri), norb, nelec, ecore=ecore, ci0=ci0)
        except _OutOfTime:
            seconds = time.perf_counter() - start
            total += seconds
            abandoned = cutoff
            partial = _last_cycle(log.getvalue(), cutoff, seconds)
            break
        ci0 = vec
        seconds = time.perf_counter() - start
        total += seconds
        na, nb = len(vec._strs[0]), len(vec._strs[1])
        points.append(
            {"cutoff": cutoff, "energy": float(energy), "strings": [na, nb], "dimension": na * nb, "seconds": seconds}
        )
        if total > max_seconds:
            break
    result: dict[str, Any] = {
        "points": points,
        "seconds": total,
        "extrapolated": None,
        "abandoned": abandoned,
        "partial": partial,
    }
    if len(points) >= 2:
        (c1, e1), (c2, e2) = [(p["cutoff"], p["energy"]) for p in points[-2:]]
        result["extrapolated"] = float(e2 - c2 * (e1 - e2) / (c1 - c2))
    result["last_step_mha"] = (points[-2]["energy"] - points[-1]["energy"]) * 1000.0 if len(points) >= 2 else None
    result["energy"] = points[-1]["energy"] if points else None
    result["cutoff"] = points[-1]["cutoff"] if points else None
    return result


# PySCF's selected CI logs each selection cycle: "cycle <k>  ci.shape (<na>, <nb>)  ..." at
# DEBUG, then "cycle <k>  E = <energy>  dE = ..." when the cycle's Davidson has converged.
_CYCLE_SHAPE = re.compile(r"cycle (\d+)\s+ci\.shape \((\d+), (\d+)\)")
_CYCLE_ENERGY = re.compile(r"cycle (\d+)\s+E = (\S+)")


def _last_cycle(log: str, cutoff: float, seconds: float) -> dict[str, Any] | None:
    """The last selection cycle an abandoned cutoff finished (its energy and string counts), or None."""
    energies = {int(m.group(1)): float(m.group(2)) for m in _CYCLE_ENERGY.finditer(log)}
    if not energies:
        return None
    cycle = max(energies)
    shapes = {int(m.group(1)): (int(m.group(2)), int(m.group(3))) for m in _CYCLE_SHAPE.finditer(log)}
    na, nb = shapes.get(cycle, (0, 0))
    return {
        "cutoff": cutoff,
        "cycle": cycle,
        "energy": energies[cycle],
        "strings": [na, nb],
        "dimension": na * nb,
        "seconds": seconds,
    }


def best_reference(meta: dict[str, Any]) -> tuple[str, float] | tuple[None, None]:
    """The most accurate reference energy in ``meta.json`` and its name.

    FCI when computed. Else the selected CI at its tightest cutoff when that series has
    converged -- its last cutoff step moved the energy by less than chemical accuracy
    (1.6 mHa); it is a variational upper bound, so quoting errors against it never flatters
    a run. Else CCSD(T) (near equilibrium usually within a few mHa of FCI, where loose
    selected-CI cutoffs are tens of mHa above it), else an unconverged selected CI, else the
    last cycle of a cutoff abandoned for time (an upper bound, named "unfinished").
    ``(None, None)`` when there is none.
    """
    refs = meta.get("references", meta)
    if refs.get("fci") is not None:
        return "FCI", float(refs["fci"])
    sci = refs.get("sci") or {}
    sci_ref = None
    if sci.get("energy") is not None:
        sci_ref = (f"SCI(cutoff={sci['cutoff']:g})", float(sci["energy"]))
        step = sci.get("last_step_mha")
        if step is not None and abs(step) < SCI_CONVERGED_MHA:
            return sci_ref
    if refs.get("ccsd_t") is not None:
        return "CCSD(T)", float(refs["ccsd_t"])
    if sci_ref is not None:
        return sci_ref
    partial = sci.get("partial")
    if partial and partial.get("energy") is not None:
        return f"SCI(cutoff={partial['cutoff']:g}, unfinished)", float(partial["energy"])
    return None, None


def compute_references(
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    ecore: float,
    *,
    fci_max_determinants: int,
    ccsd: bool,
    sci: bool | None,
    sci_cutoffs: list[float],
    sci_max_seconds: float,
    mean_field: Solution | None = None,
    user_reference: str | None = None,
) -> dict[str, Any]:
    """Reference energies (Ha) and the seconds each took; a method that fails is recorded as null.

    ``sci=None`` runs the selected-CI series only when FCI is skipped and the user gave no
    reference of their own (``user_reference`` names its source): a published DMRG or SHCI
    energy is worth more than a loose selected CI, which on a transition-metal active space
    spends its whole budget. ``sci_skipped`` says why a series did not run. ``mean_field``:
    the restricted solution already found (:func:`hinqs.chem.mean_field.search_references`);
    None computes it here.
    """
    from pyscf import cc

    norb = hcore.shape[0]
    refs: dict[str, Any] = {"n_determinants": n_determinants(norb, nelec), "seconds": {}}
    if mean_field is None:
        start = time.perf_counter()
        mean_field = restricted_mean_field(hcore, eri, nelec, ecore)
        refs["seconds"]["hf"] = time.perf_counter() - start
    solution, mf = mean_field, mean_field.mf
    refs["hf_active"] = solution.energy

    refs["ccsd"] = refs["ccsd_t"] = None
    if ccsd and solution.converged and sum(nelec) >= 2:
        start = time.perf_counter()
        mycc = cc.CCSD(mf)
        mycc.verbose = 0
        mycc.conv_tol = 1e-10
        try:
            mycc.kernel()
            if mycc.converged:
                refs["ccsd"] = float(mycc.e_tot)
                refs["ccsd_t"] = float(mycc.e_tot + mycc.ccsd_t())
        except (ValueError, np.linalg.LinAlgError, RuntimeError):
            pass
        refs["seconds"]["ccsd"] = time.perf_counter() - start

    refs["fci"] = None
    if refs["n_determinants"] <= fci_max_determinants:
        start = time.perf_counter()
        refs["fci"] = fci_energy(hcore, eri, nelec, ecore)
        refs["seconds"]["fci"] = time.perf_counter() - start

    refs["sci"] = refs["sci_skipped"] = None
    if sci is None and refs["fci"] is None and user_reference is not None:
        refs["sci_skipped"] = (
            f"the system gives its own reference ({user_reference}); set references.sci: true to run it"
        )
    elif sci or (sci is None and refs["fci"] is None):
        refs["sci"] = sci_series(hcore, eri, nelec, ecore, sci_cutoffs, sci_max_seconds)
        refs["seconds"]["sci"] = refs["sci"]["seconds"]
    return refs
