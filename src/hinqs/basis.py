"""The cumulative determinant basis of an iteration.

Iteration k's basis is iteration k-1's basis plus the unique determinants the NQS sampled
at k, with their sample counts summed (the counts weight the batch draws). The
Hartree-Fock determinant is always in the basis: it costs nothing and guarantees every
batch can describe at least the mean-field state.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hinqs.atomic import save_npz
from hinqs.determinants import hartree_fock_strings, unique_determinants, validate_determinants
from hinqs.errors import InputError


@dataclass(frozen=True)
class Determinants:
    """Unique determinants (paired uint64 CI strings) with integer weights."""

    alpha: np.ndarray
    beta: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return int(self.alpha.shape[0])


def load_determinants(path: str | os.PathLike[str]) -> Determinants:
    """Read ``alpha``, ``beta`` and (optional) ``counts`` from an ``.npz``; one-line errors."""
    path = Path(path)
    try:
        with np.load(path) as data:
            alpha = np.asarray(data["alpha"], dtype=np.uint64)
            beta = np.asarray(data["beta"], dtype=np.uint64)
            counts = np.asarray(data["counts"], dtype=np.int64) if "counts" in data else np.ones(len(alpha), np.int64)
    except FileNotFoundError:
        raise InputError(f"determinant file not found: {path}") from None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path} is not a determinant file with 'alpha' and 'beta' arrays ({exc})") from None
    if alpha.shape != beta.shape or alpha.shape != counts.shape or alpha.ndim != 1:
        raise InputError(f"{path}: 'alpha', 'beta' and 'counts' must be 1-d arrays of one length")
    return Determinants(alpha, beta, counts)


def grow_basis(previous: Determinants | None, samples: Determinants, norb: int, nelec: tuple[int, int]) -> Determinants:
    """Union of the previous basis, the new samples and the HF determinant, counts summed."""
    try:
        validate_determinants(samples.alpha, samples.beta, norb, nelec)
    except ValueError as exc:
        raise InputError(f"sampled determinants are invalid: {exc}") from None
    if previous is not None:
        # A previous basis of another system would be merged in silently otherwise.
        try:
            validate_determinants(previous.alpha, previous.beta, norb, nelec)
        except ValueError as exc:
            raise InputError(f"the previous basis does not match the Hamiltonian: {exc}") from None
    hf_a, hf_b = hartree_fock_strings(norb, nelec)
    parts = [samples]
    if previous is not None:
        parts.append(previous)
    parts.append(Determinants(np.array([hf_a], np.uint64), np.array([hf_b], np.uint64), np.array([1], np.int64)))
    alpha, beta, counts = unique_determinants(
        np.concatenate([p.alpha for p in parts]),
        np.concatenate([p.beta for p in parts]),
        np.concatenate([p.counts for p in parts]),
    )
    return Determinants(alpha, beta, counts)


def save_determinants(path: str | os.PathLike[str], dets: Determinants) -> None:
    """Write a determinant set atomically in the format ``hinqs diagonalize --configs`` reads."""
    save_npz(path, alpha=dets.alpha, beta=dets.beta, counts=dets.counts)
