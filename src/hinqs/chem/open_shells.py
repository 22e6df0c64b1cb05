"""UHF natural orbitals and every spin coupling of their open shells: a start for strong correlation.

Where a broken-symmetry UHF lies well below the restricted solution (stretched bonds,
antiferromagnetically coupled metal centres), the restricted orbitals describe the state
badly and one determinant of any orbitals holds only one of its spin couplings. The natural
orbitals of the UHF density (UNOs; Pulay & Hamilton, J. Chem. Phys. 88, 4926 (1988)) split
into nearly doubly occupied, fractionally occupied and nearly empty ones; the fractional ones
are the open shells of the state, and a CAS over them holds every spin coupling of those
shells (the UNO-CAS choice of active orbitals, Bofill & Pulay, J. Chem. Phys. 90, 3637 (1989)).

In a product space of strings this CAS costs little: the strings that put the closed shells
doubly occupied and the open-shell electrons of one spin anywhere among the open shells
(C(n_open, n_alpha_open) per spin) span it, so a handful of determinants that carry those
strings make the first subspace hold every coupling.

Measured on the [2Fe-2S] model of benchmarks/strong/fe2s2 (30 electrons in 20 localized
orbitals, DMRG -116.6056 Ha): in the file's orbitals the product space of the ten iron d
orbitals' couplings lies 649 mHa above DMRG, and the couplings of the broken-symmetry
determinant's open orbitals 320 mHa; in the UNOs the ten fractional orbitals' 252 x 252
couplings (a singlet) lie 88.8 mHa above, below the broken-symmetry UHF (+92.9 mHa), where
the first product space grown from one determinant had been 123.6 mHa above on a root of the
wrong spin.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import numpy as np

from hinqs.chem.integrals import ActiveSpaceIntegrals
from hinqs.chem.mean_field import ReferenceSearch
from hinqs.chem.rotation import natural_rotation, rotate_integrals
from hinqs.io.determinants import target_spin_square

# UNO occupations strictly between these are open shells (Bofill & Pulay's UNO-CAS window).
FRACTIONAL = (0.02, 1.98)
# A UHF this far (Ha) below the restricted solution is a broken-symmetry state worth its UNOs
# (chemical accuracy: below it the restricted orbitals are as good a start).
BROKEN_SYMMETRY_GAIN = 1.6e-3
# Most strings per spin the couplings may add: the first subspace must stay well inside the cap
# (C(12, 6) = 924 couplings of twelve open shells fit; more open shells are left to the loop).
MAX_COUPLINGS = 1000
# A UHF whose <S^2> exceeds the state's S(S+1) by more than this has broken the spin symmetry
# (spin polarisation of an open shell near equilibrium stays near 0.05).
SPIN_CONTAMINATION = 0.5


def uhf_natural_orbitals(uhf: Any) -> tuple[np.ndarray, np.ndarray]:
    """(occupations, U) of a converged UHF's spin-summed density in the integrals' orbital basis.

    The integrals' orbitals are orthonormal (the mean field runs on them with a unit overlap),
    so the density's eigenvectors are the rotation. :func:`hinqs.chem.rotation.natural_rotation`
    keeps each natural orbital in the column of the orbital it resembles most and rotates blocks
    of equal occupation (the empty orbitals, the closed shells) onto the orbitals they span, so
    the closed and empty orbitals stay as close to the input ones as the density allows.
    """
    dm = np.asarray(uhf.make_rdm1())
    return natural_rotation(dm[0] + dm[1])


def open_shells(occupations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(closed, open) orbital indices: occupations at or above the window's top, and inside it."""
    n = np.asarray(occupations, np.float64)
    closed = np.flatnonzero(n >= FRACTIONAL[1])
    fractional = np.flatnonzero((n > FRACTIONAL[0]) & (n < FRACTIONAL[1]))
    return closed, fractional


def coupling_determinants(
    occupations: np.ndarray, nelec: tuple[int, int], limit: int = MAX_COUPLINGS
) -> tuple[list[tuple[int, int]], str]:
    """Determinants whose strings span every spin coupling of the open shells, and a word.

    Each spin's strings: the closed shells doubly occupied, that spin's remaining electrons in
    every way among the open shells. Alpha string i is paired with beta string i (cyclically
    when the counts differ; with equal counts the beta string takes the open shells alpha left,
    so each determinant has the open shells singly occupied, a spin coupling), so every string
    of both lists occurs and the product space is the whole CAS. None where the open shells
    cannot hold the electrons the closed ones leave, where there is at most one string per spin
    (nothing to couple), or where a spin has more than ``limit`` strings.
    """
    closed, open_set = open_shells(occupations)
    n_open = [int(n - len(closed)) for n in nelec]
    if min(n_open) < 0 or max(n_open) > len(open_set):
        return [], f"the {len(closed)} closed and {len(open_set)} open shells do not hold {nelec} electrons"
    counts = [math.comb(len(open_set), k) for k in n_open]
    if max(counts) <= 1:
        return [], "no open shells to couple"
    if max(counts) > limit:
        return [], f"{len(open_set)} open shells have {max(counts):,} couplings per spin, above {limit:,}"
    base = sum(1 << int(p) for p in closed)
    full = sum(1 << int(p) for p in open_set)
    strings = [[base + sum(1 << int(p) for p in chosen) for chosen in itertools.combinations(open_set, k)]
               for k in n_open]  # fmt: skip
    alpha, beta = strings
    if n_open[0] + n_open[1] == len(open_set):
        pairs = [(a, base + (full & ~(a - base))) for a in alpha]
    else:
        pairs = [(alpha[i % len(alpha)], beta[i % len(beta)]) for i in range(max(counts))]
    word = (f"{len(open_set)} open shells ({n_open[0]}+{n_open[1]} electrons), {len(closed)} closed: "
            f"{counts[0]} x {counts[1]} couplings")  # fmt: skip
    return pairs, word


def broken_symmetry(search: ReferenceSearch, nelec: tuple[int, int]) -> str | None:
    """Why the lowest UHF is a broken-symmetry state worth its natural orbitals; None when it is not.

    Both must hold: its <S^2> is off the state's by more than :data:`SPIN_CONTAMINATION` (an
    open-shell molecule's UHF always lies below its ROHF by spin polarisation, a few mHa, with
    <S^2> near the exact value: no reason to leave the restricted orbitals), and it lies more
    than :data:`BROKEN_SYMMETRY_GAIN` below the restricted solution.
    """
    best, restricted = search.best_uhf(), search.restricted.energy
    if best is None or best.s2 is None or restricted is None:
        return None
    gain = restricted - best.energy
    if best.s2 - target_spin_square(nelec) <= SPIN_CONTAMINATION or gain <= BROKEN_SYMMETRY_GAIN:
        return None
    return (f"the UHF from {best.start} lies {gain * 1000:.1f} mHa below {search.restricted.kind} "
            f"with <S^2> {best.s2:.2f} (the state's {target_spin_square(nelec):g})")  # fmt: skip


def natural_orbital_start(
    mode: str, integrals: ActiveSpaceIntegrals, search: ReferenceSearch
) -> tuple[ActiveSpaceIntegrals, ReferenceSearch, dict[str, Any] | None]:
    """The integrals, mean-field search and orbital record the loop starts from.

    ``mode`` is the system's ``orbitals``: ``auto`` takes the UHF natural orbitals where
    :func:`broken_symmetry` says why, ``uno`` wherever a UHF converged, anything else never
    (the input's orbitals are returned untouched, record None). In the UNOs the integrals are
    rotated (active orbitals among themselves: the FCI energy and every reference on them are
    unchanged, so the search's mean fields and energies stand); the reference determinants are
    written again in the new orbitals: the coupling of the open shells (:func:`coupling_determinants`)
    of lowest diagonal energy first (the teacher of the first expansion; the UHF's density
    rounded in the delocalised UNOs is a closed-shell determinant far above it: +1,259 mHa
    above DMRG on the [2Fe-2S] model against +540), then the UHF's rounded density where it lies below
    aufbau, the other couplings by diagonal energy, aufbau last. ``hold_spin`` in the
    record: the spin symmetry was broken, so the loop holds the state's spin from the first
    Davidson cycle (its roots of other spins lie close).
    """
    from hinqs.chem.diagonal import DiagonalModel, occupation, rounded
    from hinqs.chem.mean_field import reference_determinants

    why = broken_symmetry(search, integrals.nelec)
    best = search.best_uhf()
    if best is None or mode not in ("auto", "uno") or (mode == "auto" and why is None):
        return integrals, search, None
    nelec, norb = integrals.nelec, integrals.norb
    occupations, u = uhf_natural_orbitals(best.mf)
    hcore, eri = rotate_integrals(integrals.hcore, integrals.eri, u)
    rotated = ActiveSpaceIntegrals(hcore, eri, nelec, integrals.ecore, {**integrals.info, "orbitals": "uno"})
    model = DiagonalModel.from_integrals(hcore, eri, integrals.ecore)
    dm = np.asarray(best.mf.make_rdm1())
    pairs, word = coupling_determinants(occupations, nelec)
    couplings = sorted(
        ({"alpha": a, "beta": b, "energy": model.energy(occupation(a, norb), occupation(b, norb)),
          "origin": "open-shell coupling"} for a, b in pairs),
        key=lambda d: (round(d["energy"], 9), d["alpha"], d["beta"]),
    )  # fmt: skip
    rounded_uhf = tuple(rounded(np.diag(u.T @ dm[spin] @ u), nelec[spin]) for spin in (0, 1))
    candidates = {f"UHF from {best.start}, in its natural orbitals, rounded": rounded_uhf}
    if couplings:  # the lowest coupling leads: the UHF's density rounded in delocalised UNOs is closed-shell
        lowest = couplings[0]
        candidates["open-shell coupling"] = (occupation(lowest["alpha"], norb), occupation(lowest["beta"], norb))
    keep = "open-shell coupling" if couplings else next(iter(candidates))
    determinants = reference_determinants(model, nelec, candidates, keep=keep)
    known = {(d["alpha"], d["beta"]) for d in determinants}
    couplings = [d for d in couplings if (d["alpha"], d["beta"]) not in known]
    search = replace(search, determinants=[*determinants[:-1], *couplings, determinants[-1]])
    record = {
        "kind": "uno",
        "why": why or "orbitals: uno",
        "occupations": [round(float(n), 6) for n in occupations],
        "open_shells": [int(p) for p in open_shells(occupations)[1]],
        "couplings": word,
        "hold_spin": why is not None,
    }
    return rotated, search, record
