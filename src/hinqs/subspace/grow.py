"""The cumulative determinant subspace of an iteration.

Iteration k's subspace is iteration k-1's subspace plus the unique determinants the NQS
sampled at k, with their sample counts summed (the counts weight the batch draws). The
reference determinants prepare found (the lowest UHF's determinant first; the aufbau
Hartree-Fock determinant among them, alone for folders written before the search) are
always in it: they cost nothing and guarantee every batch can describe at least the
mean-field state, broken-symmetry ones included where the aufbau string is a poor start.
("Subspace" is the determinant set that SQD diagonalises in; the AO basis set of the
molecule is a different thing.)
"""

from __future__ import annotations

import numpy as np

from hinqs.errors import InputError
from hinqs.io.determinants import Determinants, hartree_fock_strings, unique_determinants, validate_determinants


def grow_subspace(
    previous: Determinants | None,
    samples: Determinants,
    norb: int,
    nelec: tuple[int, int],
    references: list[tuple[int, int]] | None = None,
) -> Determinants:
    """Union of the previous subspace, the new samples and the reference determinants, counts summed.

    ``references``: (alpha, beta) strings (:func:`hinqs.io.hamiltonian.reference_strings`);
    None is the aufbau HF determinant alone."""
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
    seeds = references or [hartree_fock_strings(norb, nelec)]
    try:
        validate_determinants(
            np.array([a for a, _ in seeds], np.uint64), np.array([b for _, b in seeds], np.uint64), norb, nelec
        )
    except ValueError as exc:
        raise InputError(f"the reference determinants do not match the Hamiltonian: {exc}") from None
    parts = [samples]
    if previous is not None:
        parts.append(previous)
    parts.append(
        Determinants(
            np.array([a for a, _ in seeds], np.uint64),
            np.array([b for _, b in seeds], np.uint64),
            np.ones(len(seeds), np.int64),
        )
    )
    alpha, beta, counts = unique_determinants(
        np.concatenate([p.alpha for p in parts]),
        np.concatenate([p.beta for p in parts]),
        np.concatenate([p.weights() for p in parts]),
    )
    return Determinants(alpha, beta, counts)
