"""The samplers a trained network must beat, at the same sample budget and seed.

``nqs.sampler: uniform`` draws every string uniformly among all strings of its spin with the
right electron count (what random sampling gives), ``none`` draws nothing (the subspace grows
by PT2 expansion alone); ``untrained`` is the network itself with training skipped (in
:mod:`hinqs.steps.nqs`). Each returns the one samples type, so every later step is the same.
"""

from __future__ import annotations

import math

import numpy as np

from hinqs.io.files import Samples


def _uniform_strings(norb: int, n_electrons: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` CI strings, each ``n_electrons`` orbitals chosen uniformly without replacement."""
    if n_electrons == 0:
        return np.zeros(n, np.uint64)
    chosen = np.argsort(rng.random((n, norb)), axis=1)[:, :n_electrons]
    return np.bitwise_or.reduce(np.left_shift(np.uint64(1), chosen.astype(np.uint64)), axis=1)


def uniform_samples(norb: int, nelec: tuple[int, int], n_samples: int, rng: np.random.Generator) -> Samples:
    """``n_samples`` determinants with uniform strings, as unique determinants with counts."""
    alpha = _uniform_strings(norb, nelec[0], n_samples, rng)
    beta = _uniform_strings(norb, nelec[1], n_samples, rng)
    pairs, counts = np.unique(np.stack([alpha, beta], axis=1), axis=0, return_counts=True)
    log_p = -math.log(math.comb(norb, nelec[0])) - math.log(math.comb(norb, nelec[1]))
    return Samples(pairs[:, 0].copy(), pairs[:, 1].copy(), counts.astype(np.int64),
                   np.full(len(pairs), log_p), n_samples=n_samples)  # fmt: skip


def no_samples() -> Samples:
    """The empty sample set of ``nqs.sampler: none``."""
    empty = np.zeros(0, np.uint64)
    return Samples(empty, empty.copy(), np.zeros(0, np.int64), np.zeros(0), n_samples=0)
