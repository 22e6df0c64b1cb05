"""Encodings of determinants.

A determinant travels as a pair of integer CI strings ``(alpha, beta)``, each a ``uint64``
with bit ``i`` set when spatial orbital ``i`` is occupied by an electron of that spin. This
is the encoding PySCF's selected CI and qiskit-addon-sqd use for ``ci_strs``. It limits a
system to 64 active orbitals, far beyond what a subspace diagonalisation can handle anyway.

qiskit's bitstring matrices use another layout: one boolean row per determinant, beta
string in the left half, alpha string in the right half, column 0 the most significant
bit (orbital ``norb - 1``). Conversions to and from that layout live here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hinqs.errors import InputError

MAX_ORBITALS = 64


@dataclass(frozen=True)
class Determinants:
    """A set of determinants: paired uint64 CI strings with weights (sample counts).

    ``counts`` is ``None`` for a set read from a file without counts: the batch draws of
    the SQD engine are then uniform, which is not the same random stream as all-ones
    weights, so the absence is kept rather than filled in.
    """

    alpha: np.ndarray
    beta: np.ndarray
    counts: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.alpha.shape[0])

    def weights(self) -> np.ndarray:
        """The counts, or ones where the set carries none."""
        return np.ones(len(self), np.int64) if self.counts is None else self.counts


def _check_norb(norb: int) -> None:
    if not 1 <= norb <= MAX_ORBITALS:
        raise ValueError(f"norb must be between 1 and {MAX_ORBITALS}, got {norb}")


def occupations_to_strings(occ: np.ndarray) -> np.ndarray:
    """``(n, norb)`` 0/1 occupations -> ``(n,)`` uint64 CI strings (bit i = orbital i)."""
    occ = np.asarray(occ)
    if occ.ndim != 2:
        raise ValueError("occupations must be a 2-d array (determinants x orbitals)")
    _check_norb(occ.shape[1])
    weights = np.left_shift(np.uint64(1), np.arange(occ.shape[1], dtype=np.uint64))
    return (occ.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def strings_to_occupations(strings: np.ndarray, norb: int) -> np.ndarray:
    """``(n,)`` uint64 CI strings -> ``(n, norb)`` uint8 occupations."""
    _check_norb(norb)
    strings = np.asarray(strings, dtype=np.uint64)
    shifts = np.arange(norb, dtype=np.uint64)
    return ((strings[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)


def popcount(strings: np.ndarray) -> np.ndarray:
    """Number of set bits (electrons) in each uint64 CI string."""
    strings = np.asarray(strings, dtype=np.uint64)
    return np.bitwise_count(strings).astype(np.int64)


def to_bitstring_matrix(alpha: np.ndarray, beta: np.ndarray, norb: int) -> np.ndarray:
    """Paired CI strings -> qiskit bitstring matrix ``(n, 2 norb)`` bool: [beta | alpha], MSB first."""
    occ_a = strings_to_occupations(alpha, norb)[:, ::-1]
    occ_b = strings_to_occupations(beta, norb)[:, ::-1]
    return np.concatenate([occ_b, occ_a], axis=1).astype(bool)


def from_bitstring_matrix(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """qiskit bitstring matrix ``(n, 2 norb)`` -> paired uint64 CI strings ``(alpha, beta)``."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[1] % 2:
        raise ValueError("a bitstring matrix has shape (n, 2 * norb)")
    norb = matrix.shape[1] // 2
    beta = occupations_to_strings(matrix[:, :norb][:, ::-1])
    alpha = occupations_to_strings(matrix[:, norb:][:, ::-1])
    return alpha, beta


def unique_determinants(
    alpha: np.ndarray, beta: np.ndarray, counts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge duplicate ``(alpha, beta)`` pairs, summing counts; sorted by (alpha, beta)."""
    alpha = np.asarray(alpha, dtype=np.uint64)
    beta = np.asarray(beta, dtype=np.uint64)
    if alpha.shape != beta.shape:
        raise ValueError("alpha and beta must have the same length")
    if counts is None:
        counts = np.ones(alpha.shape, dtype=np.int64)
    pairs = np.stack([alpha, beta], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    summed = np.zeros(len(uniq), dtype=np.int64)
    np.add.at(summed, inverse.reshape(-1), np.asarray(counts, dtype=np.int64))
    return uniq[:, 0].copy(), uniq[:, 1].copy(), summed


def validate_determinants(alpha: np.ndarray, beta: np.ndarray, norb: int, nelec: tuple[int, int]) -> None:
    """Raise ``ValueError`` unless every pair has ``nelec`` electrons within ``norb`` orbitals."""
    _check_norb(norb)
    alpha = np.asarray(alpha, dtype=np.uint64)
    beta = np.asarray(beta, dtype=np.uint64)
    if alpha.shape != beta.shape or alpha.ndim != 1:
        raise ValueError("alpha and beta must be 1-d arrays of the same length")
    if norb < 64:
        limit = np.uint64(1) << np.uint64(norb)
        if np.any(alpha >= limit) or np.any(beta >= limit):
            raise ValueError(f"determinants occupy orbitals beyond norb={norb}")
    if np.any(popcount(alpha) != nelec[0]) or np.any(popcount(beta) != nelec[1]):
        raise ValueError(f"determinants must have {nelec[0]} alpha and {nelec[1]} beta electrons")


def target_spin_square(nelec: tuple[int, int]) -> float:
    """S(S+1) of the system's spin, S = (N_alpha - N_beta) / 2 (what the config's ``spin`` says)."""
    s = 0.5 * abs(nelec[0] - nelec[1])
    return s * (s + 1.0)


def spin_of_square(spin_sq: float) -> float:
    """S from an <S^2> = S(S+1)."""
    return 0.5 * (math.sqrt(1.0 + 4.0 * spin_sq) - 1.0)


def hartree_fock_strings(norb: int, nelec: tuple[int, int]) -> tuple[int, int]:
    """CI strings of the aufbau determinant: the lowest ``n`` orbitals of each spin filled."""
    _check_norb(norb)
    return (1 << nelec[0]) - 1, (1 << nelec[1]) - 1


def check_strings(
    strings: np.ndarray, norb: int, n_electrons: int, what: str, expected: str = "the run's Hamiltonian"
) -> None:
    """CI strings (uint64, bit i = orbital i) must lie within ``norb`` orbitals and hold ``n_electrons``.

    Used on files handed from step to step (teacher states, bases), where a file of another
    system would otherwise be diagonalised or trained on without complaint.
    """
    strings = np.asarray(strings, dtype=np.uint64).reshape(-1)
    if norb < 64 and np.any(strings >> np.uint64(norb)):
        top = int(np.max(strings)).bit_length()
        raise InputError(f"{what} occupies {top} orbitals, but {expected} has norb={norb}")
    counts = np.bitwise_count(strings)
    wrong = np.flatnonzero(counts != n_electrons)
    if len(wrong):
        raise InputError(f"{what} has strings with {int(counts[wrong[0]])} electrons, but {expected} has {n_electrons}")


def closed_shell(nelec: tuple[int, int], strs_a: np.ndarray | None = None, strs_b: np.ndarray | None = None) -> bool:
    """One string set serves both spins: equal electron counts (the batches then merge both
    spins' strings, as qiskit-addon-sqd's ``open_shell=False`` does) and, for a given state,
    the same strings on both sides. The one definition the engine, the expansion and the
    first-order target use."""
    if nelec[0] != nelec[1]:
        return False
    return strs_a is None or strs_b is None or bool(np.array_equal(strs_a, strs_b))
