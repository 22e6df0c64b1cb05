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

from hinqs.atomic import atomic_dir
from hinqs.errors import InputError

HCORE_FILE = "hcore.npy"
ERI_FILE = "eri.npy"
META_FILE = "meta.json"


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
    """(norb, (n_alpha, n_beta)) of a Hamiltonian's meta.json: what every step needs first."""
    try:
        return int(meta["norb"]), (int(meta["nelec"][0]), int(meta["nelec"][1]))
    except (KeyError, TypeError, ValueError, IndexError):
        raise InputError(f"{source}: meta.json lacks a valid 'norb' and 'nelec'") from None


def load_hamiltonian(directory: str | os.PathLike[str], *, mmap: bool = True, verify: bool = False) -> Hamiltonian:
    """Open a Hamiltonian folder; with ``mmap`` the arrays are read-only memory maps.

    Memory-mapping lets every worker process of a node share one copy of ``eri`` through the
    page cache instead of each unpickling its own. ``verify`` recomputes the checksums.
    """
    directory = Path(directory)
    meta = read_meta(directory)
    mode = "r" if mmap else None
    try:
        hcore = np.load(directory / HCORE_FILE, mmap_mode=mode)
        eri = np.load(directory / ERI_FILE, mmap_mode=mode)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"cannot read integrals in {directory}: {exc}") from None
    norb, nelec = active_shape(meta, directory)
    if hcore.shape != (norb, norb) or eri.shape != (norb,) * 4:
        raise InputError(f"integrals in {directory} do not match norb={norb} in {META_FILE}")
    if verify:
        for name, array in ((HCORE_FILE, hcore), (ERI_FILE, eri)):
            if sha256_of_array(array) != meta["sha256"][name]:
                raise InputError(f"{directory / name} does not match its checksum in {META_FILE}")
    return Hamiltonian(hcore=hcore, eri=eri, norb=norb, nelec=nelec, ecore=float(meta["ecore"]), meta=meta)
