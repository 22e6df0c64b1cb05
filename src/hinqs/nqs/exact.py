"""Exact enumeration for systems small enough to list every determinant (tests, ``verify``).

``comb(norb, n_alpha) * comb(norb, n_beta)`` determinants: 225 for LiH/STO-3G, 3,136 for
N2/STO-3G with a frozen core. With them the model's distribution is known exactly, so
normalisation, sampler statistics and KL can be checked without sampling noise.
"""

from __future__ import annotations

import itertools
from math import comb

import numpy as np

from hinqs.nqs.model import AutoregressiveNQS

MAX_ENUMERATION = 5_000_000


def strings_with(norb: int, n: int) -> np.ndarray:
    """All uint64 CI strings of ``n`` electrons in ``norb`` orbitals, ascending."""
    strings = [sum(1 << i for i in occ) for occ in itertools.combinations(range(norb), n)]
    return np.array(sorted(strings), dtype=np.uint64)


def enumerate_determinants(norb: int, nelec: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Every valid determinant as paired CI strings, sorted by (alpha, beta)."""
    total = comb(norb, nelec[0]) * comb(norb, nelec[1])
    if total > MAX_ENUMERATION:
        raise ValueError(f"{total} determinants are too many to enumerate")
    alpha = strings_with(norb, nelec[0])
    beta = strings_with(norb, nelec[1])
    return np.repeat(alpha, len(beta)), np.tile(beta, len(alpha))


def exact_distribution(model: AutoregressiveNQS, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(alpha, beta, p)``: the model's probability of every valid determinant."""
    alpha, beta = enumerate_determinants(model.config.norb, model.config.nelec)
    return alpha, beta, np.exp(model.log_prob(alpha, beta, temperature=temperature))
