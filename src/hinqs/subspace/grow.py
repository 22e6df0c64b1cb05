"""The cumulative determinant subspace of an iteration.

Iteration k's subspace is iteration k-1's subspace plus the unique determinants the NQS
sampled at k, with their sample counts summed (the counts weight the batch draws). The
Hartree-Fock determinant is always in it: it costs nothing and guarantees every batch can
describe at least the mean-field state. ("Subspace" is the determinant set that SQD
diagonalises in; the AO basis set of the molecule is a different thing.)
"""

from __future__ import annotations

import numpy as np

from hinqs.errors import InputError
from hinqs.io.determinants import Determinants, hartree_fock_strings, unique_determinants, validate_determinants


def grow_subspace(
    previous: Determinants | None, samples: Determinants, norb: int, nelec: tuple[int, int]
) -> Determinants:
    """Union of the previous subspace, the new samples and the HF determinant, counts summed."""
    try:
        validate_determinants(samples.alpha, samples.beta, norb, nelec)
    except ValueError as exc:
        raise InputError(f"sampled determinants are invalid: {exc}") from None
    if previous is not None:
        # A previous subspace of another system would be merged in silently otherwise.
        try:
            validate_determinants(previous.alpha, previous.beta, norb, nelec)
        except ValueError as exc:
            raise InputError(f"the previous subspace does not match the Hamiltonian: {exc}") from None
    hf_a, hf_b = hartree_fock_strings(norb, nelec)
    parts = [samples]
    if previous is not None:
        parts.append(previous)
    parts.append(Determinants(np.array([hf_a], np.uint64), np.array([hf_b], np.uint64), np.array([1], np.int64)))
    alpha, beta, counts = unique_determinants(
        np.concatenate([p.alpha for p in parts]),
        np.concatenate([p.beta for p in parts]),
        np.concatenate([p.weights() for p in parts]),
    )
    return Determinants(alpha, beta, counts)
