"""The on-disk Hamiltonian: the one format every later stage reads.

A Hamiltonian folder holds

- ``hcore.npy``: ``(norb, norb)`` float64 one-electron integrals of the active space
  (frozen-core potential included);
- ``eri.npy``: ``(norb, norb, norb, norb)`` float64 two-electron integrals, chemist's
  notation ``(pq|rs)``, full 4-index so that worker processes can memory-map it
  (``numpy.load(mmap_mode="r")``) and share one copy through the page cache;
- ``meta.json``: norb, nelec ``[n_alpha, n_beta]``, core energy (nuclear repulsion plus
  frozen core), HF and reference energies, sha256 of each array, library versions and the
  system as given.

The folder is written as a whole and renamed into place, so it is either complete or absent.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.errors import InputError
from hinqs.io.atomic import atomic_dir
from hinqs.io.determinants import hartree_fock_strings, validate_determinants

HCORE_FILE = "hcore.npy"
ERI_FILE = "eri.npy"
META_FILE = "meta.json"

# PySCF's selected CI (which qiskit-addon-sqd's solve_fermion and the lean solver call)
# keeps CI strings as int64 and builds its per-orbital masks 1 << i in int64: with 64
# orbitals the mask of orbital 63 overflows and make_hdiag raises a TypeError (measured,
# PySCF 2.14). The uint64 encoding of hinqs.io.determinants would hold 64; the solver holds 63.
SOLVER_MAX_ORBITALS = 63


def check_orbital_count(norb: int, what: str, hint: str = "") -> None:
    """Refuse an active space the solver cannot represent, at prepare time rather than mid-run."""
    if norb > SOLVER_MAX_ORBITALS:
        raise InputError(
            f"{what}: {norb} active orbitals exceed the {SOLVER_MAX_ORBITALS} that PySCF's selected CI "
            f"can encode (int64 CI strings){hint}"
        )


@dataclass(frozen=True)
class Hamiltonian:
    """Active-space integrals plus what is needed to turn eigenvalues into total energies."""

    hcore: np.ndarray
    eri: np.ndarray
    norb: int
    nelec: tuple[int, int]
    ecore: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_determinants(self) -> int:
        """Size of the full CI space, comb(norb, n_alpha) * comb(norb, n_beta)."""
        from math import comb

        return comb(self.norb, self.nelec[0]) * comb(self.norb, self.nelec[1])


def sha256_of_array(array: np.ndarray) -> str:
    """Checksum of an array's bytes (C order), recorded in meta.json and checked on demand."""
    digest = hashlib.sha256()
    view = np.ascontiguousarray(array)
    digest.update(memoryview(view).cast("B"))
    return digest.hexdigest()


def hamiltonian_id(meta: dict[str, Any]) -> str:
    """Names one set of integrals: the checksums meta.json records of hcore and eri."""
    sums = meta.get("sha256") or {}
    return f"{sums.get(HCORE_FILE, '')}:{sums.get(ERI_FILE, '')}"


def solved_energy(state: Any, ham: Hamiltonian) -> float | None:
    """The electronic energy <Psi|H|Psi> of a state read from state.npz, when the file says it
    was solved in these very integrals (its ``hamiltonian`` id); else None, and the caller
    computes it (a teacher from before a natural-orbital turn, a hand-made state).

    The solver already computed it: one product over a 16-million-determinant state is tens
    of seconds that the expansion and the training would otherwise each spend again.
    """
    energy, solved_in = getattr(state, "energy", None), getattr(state, "hamiltonian", None)
    if energy is None or solved_in is None or solved_in != hamiltonian_id(ham.meta):
        return None
    return float(energy) - ham.ecore


def check_integrals(hcore: np.ndarray, eri: np.ndarray) -> int:
    """Validate shapes and symmetry of the integrals; return norb."""
    if hcore.ndim != 2 or hcore.shape[0] != hcore.shape[1]:
        raise InputError(f"hcore must be a square matrix, got shape {hcore.shape}")
    norb = hcore.shape[0]
    if eri.shape != (norb,) * 4:
        raise InputError(f"eri must have shape {(norb,) * 4}, got {eri.shape}")
    if not (np.all(np.isfinite(hcore)) and np.all(np.isfinite(eri))):
        raise InputError("integrals contain non-finite values")
    if not np.allclose(hcore, hcore.T, atol=1e-10):
        raise InputError("hcore is not symmetric")
    return norb


def write_hamiltonian(
    out_dir: str | os.PathLike[str],
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    ecore: float,
    meta: dict[str, Any],
) -> Path:
    """Write a complete Hamiltonian folder atomically; ``meta`` is extended with the basics."""
    hcore = np.ascontiguousarray(hcore, dtype=np.float64)
    eri = np.ascontiguousarray(eri, dtype=np.float64)
    norb = check_integrals(hcore, eri)
    full_meta = {
        "format": "hinqs-hamiltonian/1",
        "norb": norb,
        "nelec": [int(nelec[0]), int(nelec[1])],
        "ecore": float(ecore),
        "sha256": {HCORE_FILE: sha256_of_array(hcore), ERI_FILE: sha256_of_array(eri)},
        **meta,
    }
    target = Path(out_dir)
    with atomic_dir(target) as tmp:
        np.save(tmp / HCORE_FILE, hcore)
        np.save(tmp / ERI_FILE, eri)
        (tmp / META_FILE).write_text(json.dumps(full_meta, indent=2) + "\n")
    return target


def read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """meta.json of a Hamiltonian folder, with a one-line error when it is missing or broken."""
    path = Path(directory) / META_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"no Hamiltonian at {directory}: {META_FILE} is missing") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc.msg}") from None


def active_shape(meta: dict[str, Any], source: str | os.PathLike[str] = "meta.json") -> tuple[int, tuple[int, int]]:
    """(norb, (n_alpha, n_beta)) of a Hamiltonian's meta.json: what every step needs first.

    norb is checked against the solver's limit: a hand-made folder must not get past the
    step that would have refused it (prepare).
    """
    try:
        norb, nelec = int(meta["norb"]), (int(meta["nelec"][0]), int(meta["nelec"][1]))
    except (KeyError, TypeError, ValueError, IndexError):
        raise InputError(f"{source}: meta.json lacks a valid 'norb' and 'nelec'") from None
    check_orbital_count(norb, str(source))
    return norb, nelec


# Checksums are verified on every load up to this size of eri.npy (norb <= 53): hashing runs
# at about 1 GB/s, well under a second, against a diagonalisation step that takes seconds to
# hours, and a corrupted or hand-replaced integral file otherwise gives a wrong energy silently.
VERIFY_MAX_BYTES = 64 * 2**20


def _load_array(path: Path, mode: str | None) -> np.ndarray:
    """One integral array, with a one-line error for a missing, truncated or foreign file."""
    try:
        array = np.load(path, mmap_mode=mode, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path} is missing") from None
    except (ValueError, OSError, EOFError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path} is truncated or not a .npy array ({detail})") from None
    if array.dtype != np.float64:
        raise InputError(f"{path} holds {array.dtype} values, expected float64")
    return array


def load_hamiltonian(
    directory: str | os.PathLike[str], *, mmap: bool = True, verify: bool | None = None
) -> Hamiltonian:
    """Open a Hamiltonian folder; with ``mmap`` the arrays are read-only memory maps.

    Memory-mapping lets every worker process of a node share one copy of ``eri`` through the
    page cache instead of each unpickling its own. ``verify`` recomputes the checksums;
    by default (None) it does so when ``eri.npy`` is at most :data:`VERIFY_MAX_BYTES`.
    """
    directory = Path(directory)
    meta = read_meta(directory)
    norb, nelec = active_shape(meta, directory)
    mode = "r" if mmap else None
    hcore = _load_array(directory / HCORE_FILE, mode)
    eri = _load_array(directory / ERI_FILE, mode)
    if hcore.shape != (norb, norb) or eri.shape != (norb,) * 4:
        raise InputError(
            f"integrals in {directory} (hcore {hcore.shape}, eri {eri.shape}) do not match norb={norb} in {META_FILE}"
        )
    if verify is None:
        verify = eri.nbytes <= VERIFY_MAX_BYTES
    if verify:
        verify_checksums(directory, meta, {HCORE_FILE: hcore, ERI_FILE: eri})
    try:
        ecore = float(meta["ecore"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{directory / META_FILE} lacks a valid 'ecore'") from None
    return Hamiltonian(hcore=hcore, eri=eri, norb=norb, nelec=nelec, ecore=ecore, meta=meta)


def verify_checksums(directory: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Compare each array's sha256 with the one meta.json recorded when the folder was written."""
    recorded = meta.get("sha256")
    if not isinstance(recorded, dict):
        raise InputError(f"{directory / META_FILE} lacks the 'sha256' checksums of the integrals")
    for name, array in arrays.items():
        if sha256_of_array(array) != recorded.get(name):
            raise InputError(f"{directory / name} does not match its checksum in {META_FILE}: the file was altered")


def reference_strings(meta: dict[str, Any], source: str | os.PathLike[str] = "meta.json") -> list[tuple[int, int]]:
    """The reference determinants prepare recorded, as (alpha, beta) CI strings, the lowest UHF's first.

    The loop's first subspace holds them all and its first expansion starts from the first.
    A folder written before prepare searched for them (no ``reference_determinants``) gives
    the aufbau determinant alone, what every run started from then. A recorded string that
    does not fit the folder's orbitals and electrons is refused: it would seed another system.
    """
    norb, nelec = active_shape(meta, source)
    recorded = meta.get("reference_determinants")
    if not recorded:
        return [hartree_fock_strings(norb, nelec)]
    try:
        pairs = [(int(d["alpha"]), int(d["beta"])) for d in recorded]
        validate_determinants(
            np.array([a for a, _ in pairs], np.uint64), np.array([b for _, b in pairs], np.uint64), norb, nelec
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{source}: invalid reference_determinants ({exc})") from None
    return pairs
