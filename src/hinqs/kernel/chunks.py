"""Reductions over fixed chunks of a vector, each summed in one fixed order.

A dot product over a vector split across MPI ranks gives different bits at different rank
counts if each rank sums its own part: the partial sums change with the split. Here the
vector is cut into chunks at fixed positions (independent of the ranks), each chunk is
summed alone in a fixed order (four running sums, combined as ``(s0 + s1) + (s2 + s3)``,
whatever the memory alignment), and the chunk sums are added in chunk order
(:func:`ordered_sum`): the same bits whichever rank holds which chunks.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def chunk_dots(x: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``out[i] = sum x[k] y[k]`` over ``bounds[i] <= k < bounds[i + 1]`` (flat arrays)."""
    out = np.empty(len(bounds) - 1)
    for i in range(len(bounds) - 1):
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        k = bounds[i]
        stop = bounds[i + 1]
        while k + 4 <= stop:
            s0 += x[k] * y[k]
            s1 += x[k + 1] * y[k + 1]
            s2 += x[k + 2] * y[k + 2]
            s3 += x[k + 3] * y[k + 3]
            k += 4
        while k < stop:
            s0 += x[k] * y[k]
            k += 1
        out[i] = (s0 + s1) + (s2 + s3)
    return out


@nb.njit(cache=True)
def ordered_sum(partials: np.ndarray) -> np.ndarray:
    """``out[j] = sum_i partials[j, i]``, added left to right."""
    out = np.zeros(partials.shape[0])
    for j in range(partials.shape[0]):
        total = 0.0
        for i in range(partials.shape[1]):
            total += partials[j, i]
        out[j] = total
    return out


@nb.njit(cache=True)
def chunk_occupations(c: np.ndarray, occ_a: np.ndarray, occ_b: np.ndarray, norb: int,
                      row_bounds: np.ndarray) -> np.ndarray:  # fmt: skip
    """Per chunk of rows (``row_bounds``, local): the unnormalised alpha and beta occupations
    ``sum |C[x, y]|^2 n_p`` over the chunk, shape ``(chunks, 2 * norb)``, in a fixed order."""
    out = np.zeros((len(row_bounds) - 1, 2 * norb))
    for i in range(len(row_bounds) - 1):
        for x in range(row_bounds[i], row_bounds[i + 1]):
            row_weight = 0.0
            for y in range(c.shape[1]):
                w = c[x, y] * c[x, y]
                row_weight += w
                for e in range(occ_b.shape[1]):
                    out[i, norb + occ_b[y, e]] += w
            for e in range(occ_a.shape[1]):
                out[i, occ_a[x, e]] += row_weight
    return out
