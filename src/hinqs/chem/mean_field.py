"""Mean fields on the active-space integrals: RHF/ROHF and UHF, each taken to a stable solution.

One code path for geometry and FCIDUMP input: a PySCF mean-field object over the integrals
themselves (unit overlap, the file's orbitals as the basis). Where the orbitals are
canonical SCF orbitals the aufbau start is already self-consistent; an FCIDUMP of localized
orbitals (a metal cluster) gives no such start, the RHF from aufbau may not converge, and
the lowest mean field of an antiferromagnetic singlet breaks spin symmetry. So:

- the restricted solution (RHF, or ROHF for open shells) starts from aufbau, then from the
  core Hamiltonian, then with PySCF's second-order solver, and is followed along its
  internal instabilities (``mf.stability()``) until stable: it feeds CCSD and ``hf_active``;
- UHF starts from several determinants (the restricted density, aufbau, the lowest
  diagonal determinant found by descent, broken-symmetry splits of the orbitals) and is
  followed to stability from each; the lowest stable solution is the UHF of the record;
- a clear word is recorded where nothing converges, never a crash.

The converged solutions, rounded to determinants in the integrals' orbital basis and
polished by :meth:`hinqs.chem.diagonal.DiagonalModel.descend`, are the loop's first references.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hinqs.chem.diagonal import (
    DiagonalModel,
    aufbau,
    open_shell_counts,
    paired_split,
    rounded,
    split_bias,
    split_groups,
    string_of,
)

# Rounds of "rotate along the unstable direction and converge again" before a solution is
# recorded as unstable (PySCF's examples need 1-3 on stretched bonds).
STABILITY_ROUNDS = 6
# Singly occupied orbital counts tried per split (the largest gaps in the on-site repulsion).
OPEN_SHELL_CUTS = 2
# How many determinants below the aufbau one are kept (spin-flip partners come on top).
MAX_REFERENCES = 4


@dataclass
class Solution:
    """One SCF attempt: where it started and what it reached (``mf`` is the PySCF object)."""

    kind: str
    start: str
    energy: float | None
    converged: bool
    stable: bool
    s2: float | None = None
    mf: Any = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start,
            "energy": self.energy,
            "converged": self.converged,
            "stable": self.stable,
            "s2": self.s2,
        }


@dataclass
class ReferenceSearch:
    """The restricted solution (for CCSD), every UHF tried, and the reference determinants."""

    restricted: Solution
    unrestricted: list[Solution]
    determinants: list[dict[str, Any]]
    seconds: float

    def best_uhf(self) -> Solution | None:
        """The lowest stable UHF, else the lowest converged one (recorded as unstable)."""
        converged = [s for s in self.unrestricted if s.converged and s.energy is not None]
        stable = [s for s in converged if s.stable]
        pool = stable or converged
        return min(pool, key=lambda s: round(s.energy, 8)) if pool else None  # ties: the first start

    def record(self) -> dict[str, Any]:
        best = self.best_uhf()
        return {
            "restricted": self.restricted.record(),
            "uhf": None if best is None else best.record(),
            "solutions": [s.record() for s in self.unrestricted],
            "word": self.word(),
            "seconds": self.seconds,
        }

    def word(self) -> str:
        """One line for meta.json and the log: what the mean fields found."""
        r, u = self.restricted, self.best_uhf()
        parts = []
        if not r.converged:
            parts.append(f"no {r.kind} converged (tried aufbau, core Hamiltonian, second-order)")
        else:
            parts.append(f"{r.kind} {r.energy:.8f}" + ("" if r.stable else " (unstable)"))
        if u is None:
            parts.append("no UHF converged from any start")
        else:
            below = "" if not r.converged else f", {(r.energy - u.energy) * 1000:.3f} mHa below {r.kind}"
            flag = "" if u.stable else ", unstable"
            parts.append(f"UHF {u.energy:.8f} from {u.start} (<S^2> {u.s2:.3f}{below}{flag})")
        return "; ".join(parts)


def _molecule(nelec: tuple[int, int]) -> Any:
    from pyscf import gto

    mol = gto.M(verbose=0)
    mol.nelectron = int(sum(nelec))
    mol.spin = int(nelec[0] - nelec[1])
    mol.incore_anyway = True
    return mol


def _on_integrals(kind: str, hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], ecore: float) -> Any:
    """A PySCF mean field of ``kind`` (RHF, ROHF, UHF) whose Hamiltonian is the given integrals."""
    from pyscf import scf

    norb = hcore.shape[0]
    mf = {"RHF": scf.RHF, "ROHF": scf.ROHF, "UHF": scf.UHF}[kind](_molecule(nelec))
    mf.get_hcore = lambda *_args: np.asarray(hcore)
    mf.get_ovlp = lambda *_args: np.eye(norb)
    mf.energy_nuc = lambda *_args: ecore
    mf._eri = np.asarray(eri).reshape(norb * norb, norb * norb)
    mf.conv_tol = 1e-12
    mf.max_cycle = 200
    mf.verbose = 0
    return mf


def _density(kind: str, occ_a: np.ndarray, occ_b: np.ndarray) -> np.ndarray:
    """The start density of a determinant (diagonal in the integrals' orbital basis)."""
    da, db = np.diag(np.asarray(occ_a, float)), np.diag(np.asarray(occ_b, float))
    return da + db if kind == "RHF" else np.array([da, db])


def _converge(mf: Any, dm0: Any) -> bool:
    """DIIS from ``dm0``; where it fails, PySCF's second-order solver from the same start."""
    try:
        return _converge_or_raise(mf, dm0)
    except SCF_FAILURES:
        mf.converged = False
        return False


def _converge_or_raise(mf: Any, dm0: Any) -> bool:
    mf.kernel(dm0)
    if not mf.converged:
        _second_order(mf, dm0)
    return bool(mf.converged)


def _second_order(mf: Any, dm0: Any) -> None:
    """PySCF's second-order (Newton) solver from ``dm0``; its solution copied into ``mf`` when it converges."""
    mf.converged = False
    try:
        newton = mf.newton()
        newton.kernel(dm0)
        if newton.converged:
            mf.__dict__.update({k: getattr(newton, k) for k in ("mo_coeff", "mo_occ", "mo_energy", "e_tot")})
            mf.converged = True
    except SCF_FAILURES:
        mf.converged = False


def stabilise(mf: Any) -> bool:
    """Follow internal instabilities (``mf.stability()``) to a stable solution; True when reached.

    A UHF sitting on a spin-symmetric solution is checked as RHF -> UHF (external): PySCF's
    UHF analysis starts its Davidson from a spin-symmetric guess and so never sees the
    symmetry-breaking direction there (measured: a stretched H6 chain whose broken-symmetry
    UHF lies 451 mHa lower was called stable).
    """
    if not _rotations(mf):  # every orbital filled or none: nothing to rotate, nothing unstable
        return True
    for _ in range(STABILITY_ROUNDS):
        if _spin_symmetric(mf):
            (mo_a, mo_b), external_stable = _as_restricted(mf).stability(
                internal=False, external=True, return_status=True
            )[1::2]
            if external_stable:
                mo, stable = mf.stability(return_status=True)[0::2]
            else:
                mo, stable = (mo_a, mo_b), False
        else:
            mo, stable = mf.stability(return_status=True)[0::2]
        if stable:
            return True
        energy = mf.e_tot
        # Newton from the rotated density: it starts next to the lower solution, where DIIS
        # spent its 200 cycles oscillating (stretched N2/STO-3G: 31 such re-convergences, 19 s)
        rotated = mf.make_rdm1(mo, mf.mo_occ)
        _second_order(mf, rotated)
        if not mf.converged:
            _converge(mf, rotated)
        if not mf.converged or mf.e_tot > energy + 1e-9:
            return False
    return False


def internally_stable(mf: Any) -> bool | None:
    """PySCF's internal stability analysis of a converged SCF; None where it cannot run."""
    if not _rotations(mf):
        return True
    try:
        return bool(mf.stability(return_status=True)[2])
    except SCF_FAILURES:
        return None


def _rotations(mf: Any) -> int:
    """How many occupied-empty orbital pairs the solution has (PySCF's analysis divides by it)."""
    occ = np.asarray(mf.mo_occ)
    if occ.ndim == 2:
        return int(sum((o > 0).sum() * (o == 0).sum() for o in occ))
    doubly, singly, empty = (occ == 2).sum(), (occ == 1).sum(), (occ == 0).sum()
    return int(doubly * singly + doubly * empty + singly * empty)


def _spin_symmetric(mf: Any) -> bool:
    """A UHF solution whose two spin densities are equal (a closed-shell RHF in disguise)."""
    if getattr(mf, "mo_coeff", None) is None or np.ndim(mf.mo_occ) != 2:
        return False
    dm = np.asarray(mf.make_rdm1())
    return bool(np.allclose(dm[0], dm[1], atol=1e-6))


def _as_restricted(mf: Any) -> Any:
    """The RHF object of a spin-symmetric UHF solution (same Hamiltonian, alpha orbitals)."""
    from pyscf import scf

    restricted = scf.RHF(mf.mol)
    for name in ("get_hcore", "get_ovlp", "energy_nuc", "_eri", "verbose"):
        setattr(restricted, name, getattr(mf, name))
    restricted.mo_coeff, restricted.mo_occ = mf.mo_coeff[0], mf.mo_occ[0] * 2
    restricted.mo_energy, restricted.e_tot, restricted.converged = mf.mo_energy[0], mf.e_tot, True
    return restricted


# What PySCF's SCF and stability code raise on a degenerate or ill-conditioned start: such an
# attempt is recorded as failed, never a crash of prepare.
SCF_FAILURES = (np.linalg.LinAlgError, ValueError, RuntimeError, ZeroDivisionError, FloatingPointError)


def _solution(kind: str, start: str, mf: Any, converged: bool) -> Solution:
    try:
        stable = converged and stabilise(mf)
    except SCF_FAILURES:
        stable = False
    converged = bool(mf.converged)
    s2 = float(mf.spin_square()[0]) if converged and kind == "UHF" else None
    energy = float(mf.e_tot) if converged else None
    return Solution(kind, start, energy, converged, stable, s2, mf)


def restricted_mean_field(hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], ecore: float) -> Solution:
    """RHF (closed shells) or ROHF (open shells), stable where a start converges.

    Aufbau first (canonical orbitals: already self-consistent, so geometry systems get the
    bits they always had), then the core Hamiltonian's eigenvectors.
    """
    kind = "RHF" if nelec[0] == nelec[1] else "ROHF"
    norb = hcore.shape[0]
    mf = _on_integrals(kind, hcore, eri, nelec, ecore)
    if _converge(mf, _density(kind, *aufbau(norb, nelec))):
        return _solution(kind, "aufbau", mf, True)
    _, vectors = np.linalg.eigh(np.asarray(hcore))
    mf = _on_integrals(kind, hcore, eri, nelec, ecore)
    occ = np.zeros(norb)
    occ_a, occ_b = occ.copy(), occ.copy()
    occ_a[: nelec[0]], occ_b[: nelec[1]] = 1, 1
    dm_a, dm_b = (vectors * occ_a) @ vectors.T, (vectors * occ_b) @ vectors.T
    dm0 = dm_a + dm_b if kind == "RHF" else np.array([dm_a, dm_b])
    return _solution(kind, "core Hamiltonian", mf, _converge(mf, dm0))


def _uhf_from(
    start: str, dm0: np.ndarray, hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], ecore: float
) -> Solution:
    mf = _on_integrals("UHF", hcore, eri, nelec, ecore)
    return _solution("UHF", start, mf, _converge(mf, dm0))


def _start_determinants(model: DiagonalModel, nelec: tuple[int, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Determinants to start UHF from: aufbau, its descent, and a descent steered by each split.

    The steering field is the largest on-site Coulomb integral (the price of a pair): strong
    enough to pull each spin onto its group, then an unsteered descent relaxes what it forced.
    """
    norb = model.norb
    occ = aufbau(norb, nelec)
    starts = {"aufbau": occ, "lowest diagonal": model.descend(*occ)}
    strength = float(np.max(np.diag(model.coulomb)))
    for name, (first, second) in split_groups(norb).items():
        steered = model.descend(*occ, bias=split_bias(norb, first, second, strength))
        starts[f"broken symmetry ({name})"] = model.descend(*steered)
        for n_open in open_shell_counts(model, nelec, OPEN_SHELL_CUTS):
            starts[f"broken symmetry ({name}, {n_open} open)"] = paired_split(model, nelec, n_open, first, second)
    return starts


def _restricted_density(solution: Solution) -> np.ndarray | None:
    if not solution.converged:
        return None
    dm = np.asarray(solution.mf.make_rdm1())
    return np.array([dm / 2, dm / 2]) if dm.ndim == 2 else dm


def search_references(hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], ecore: float) -> ReferenceSearch:
    """The restricted mean field, UHF from every start, and the reference determinants they give."""
    begin = time.perf_counter()
    hcore, eri = np.asarray(hcore, dtype=np.float64), np.asarray(eri, dtype=np.float64)
    restricted = restricted_mean_field(hcore, eri, nelec, ecore)
    model = DiagonalModel.from_integrals(hcore, eri, ecore)
    starts = _start_determinants(model, nelec)
    unrestricted = []
    dm = _restricted_density(restricted)
    if dm is not None:
        unrestricted.append(_uhf_from(restricted.kind, dm, hcore, eri, nelec, ecore))
    for name, (occ_a, occ_b) in starts.items():
        unrestricted.append(_uhf_from(name, _density("UHF", occ_a, occ_b), hcore, eri, nelec, ecore))
    candidates = dict(starts)
    for solution in [restricted, *unrestricted]:
        if solution.converged:
            occ = _rounded(solution, nelec)
            candidates[f"{solution.kind} from {solution.start}, rounded"] = occ
            candidates[f"{solution.kind} from {solution.start}"] = model.descend(*occ)
    search = ReferenceSearch(restricted, unrestricted, [], 0.0)
    best = search.best_uhf()
    keep = None if best is None else f"{best.kind} from {best.start}, rounded"
    search.determinants = reference_determinants(model, nelec, candidates, keep)
    search.seconds = time.perf_counter() - begin
    return search


def _rounded(solution: Solution, nelec: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A converged SCF's occupied space as the determinant of the largest diagonal densities."""
    dm = np.asarray(solution.mf.make_rdm1())
    if dm.ndim == 2:  # RHF: both spins share the density
        dm = np.array([dm / 2, dm / 2])
    return rounded(np.diag(dm[0]), nelec[0]), rounded(np.diag(dm[1]), nelec[1])


def reference_determinants(
    model: DiagonalModel,
    nelec: tuple[int, int],
    candidates: dict[str, tuple[np.ndarray, np.ndarray]],
    keep: str | None = None,
) -> list[dict[str, Any]]:
    """The loop's references: the candidate named ``keep`` first, then the others by <D|H|D>,
    aufbau last; with N_alpha = N_beta each one's spin-flip partner (the same diagonal energy)
    right after it.

    ``keep`` is the lowest UHF rounded to a determinant: the one that leads, because the
    diagonal energy alone misjudges antiferromagnets (same-spin exchange lowers <D|H|D>, the
    superexchange that favours alternating spins is off-diagonal). Measured on stretched
    hydrogen chains in site orbitals (H6 at 1.5 and 2.0 A, H8 at 1.8 A, STO-3G): the lowest
    <D|H|D> is a ferromagnetic-block determinant of FCI weight below 1e-4, while the lowest
    UHF's determinant is the alternating (Neel) one, the heaviest determinant of the FCI state
    (weights 0.099, 0.168, 0.084); on the [2Fe-2S] model it is the textbook broken-symmetry
    determinant (one iron's d shell alpha, the other's beta), 305 mHa above the lowest <D|H|D>.
    The others enter only below aufbau's <D|H|D>, at most :data:`MAX_REFERENCES` of them: near
    equilibrium the list is aufbau alone, and those runs are unchanged bit for bit.
    """
    occ = aufbau(model.norb, nelec)
    floor = model.energy(*occ)
    first = {"alpha": string_of(occ[0]), "beta": string_of(occ[1]), "energy": floor, "origin": "aufbau"}
    found: dict[tuple[int, int], dict[str, Any]] = {}
    kept_key = None
    for origin, (occ_a, occ_b) in candidates.items():
        key = (string_of(occ_a), string_of(occ_b))
        if nelec[0] == nelec[1]:  # a determinant and its spin-flip partner are one candidate
            key = min(key, key[::-1])
        kept_key = key if origin == keep else kept_key
        energy = model.energy(occ_a, occ_b)
        if key not in found and energy < floor - 1e-9:
            found[key] = {"alpha": key[0], "beta": key[1], "energy": energy, "origin": origin}
    # Rounded: determinants equal by symmetry (degenerate orbitals) tie, broken by their strings.
    rest = sorted(found.values(), key=lambda d: (round(d["energy"], 9), d["alpha"], d["beta"]))[:MAX_REFERENCES]
    lead = found.get(kept_key) if kept_key is not None else None
    chosen = [lead, *(d for d in rest if d is not lead), first] if lead is not None else [*rest, first]
    listed: list[dict[str, Any]] = []
    for det in chosen:
        partners = [det]
        if nelec[0] == nelec[1] and det["alpha"] != det["beta"]:
            flipped = {"alpha": det["beta"], "beta": det["alpha"], "origin": det["origin"] + ", spin flipped"}
            partners.append({**det, **flipped})
        listed.extend(p for p in partners if all((p["alpha"], p["beta"]) != (q["alpha"], q["beta"]) for q in listed))
    return listed
