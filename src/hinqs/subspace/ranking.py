"""Pick the best-scored strings so that the last bits of a score never decide what is picked.

The subspace step keeps and adds strings by score (EN-PT2 gain, eviction cost). Two things
made that choice fragile:

- scores equal by symmetry (the pi_x and pi_y excitations of a linear molecule, the two
  spins of a closed shell) come out equal only to rounding, and which of them survives a cut
  followed the last bits, which follow the thread count of the solve that produced the state
  (OpenMP reductions, BLAS): a run on 12 threads chose other strings than one on 2;
- strings with no score at all (zero PT2: not connected to the state) were ranked among
  themselves by their integer value, so "filling the cap" meant "take the lowest integers".

:func:`top_groups` therefore ranks *groups* of scores equal to a relative ``tolerance``
(single linkage over the sorted scores: a gap below the tolerance joins two neighbours), and
takes a group whole or not at all; strings whose score is zero (up to rounding noise,
:data:`NO_SCORE`) are never taken. A cut can shift only when a gap between two scores
sits within the rounding noise (about 1e-14 relative) of the tolerance (1e-9), which is
what makes it independent of the thread count.
Keeping symmetry partners together is also what the chemistry wants.
"""

from __future__ import annotations

import numpy as np

TIE_TOLERANCE = 1e-9  # relative: scores closer than this are the same score
NO_SCORE = 1e-14  # Ha: below this a score is rounding noise (a symmetry-forbidden string), i.e. zero


def score_groups(score: np.ndarray, tolerance: float = TIE_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``score`` in descending order, and the group label of each (0 = best group).

    Consecutive sorted scores whose difference is at most ``tolerance`` times the larger
    magnitude are one group. Within a group the order is by index (stable), which only
    matters to callers that take whole groups anyway.
    """
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    if len(ranked) < 2:
        return order, np.zeros(len(order), np.int64)
    finite = np.isfinite(ranked[:-1]) & np.isfinite(ranked[1:])
    scale = np.maximum(np.abs(ranked[:-1]), np.abs(ranked[1:]))
    with np.errstate(invalid="ignore"):
        close = (ranked[:-1] - ranked[1:]) <= tolerance * scale
    new_group = np.where(finite, ~close, ranked[:-1] != ranked[1:])
    labels = np.concatenate([[0], np.cumsum(new_group)])
    return order, labels


def top_groups(score: np.ndarray, limit: int, tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Indices (ascending) of at most ``limit`` entries with the largest positive scores, whole groups only.

    ``inf`` marks entries that must be taken (they count towards ``limit``); entries scored
    at most :data:`NO_SCORE` (zero, or the rounding noise of a zero) are never taken. A group
    of equal scores that does not fit whole is left out, and so is everything after it: the
    cut stays where the scores differ.
    """
    score = np.asarray(score, dtype=np.float64)
    if limit <= 0 or len(score) == 0:
        return np.zeros(0, np.int64)
    order, labels = score_groups(score, tolerance)
    positive = score[order] > NO_SCORE
    order, labels = order[positive], labels[positive]
    if len(order) <= limit:
        return np.sort(order)
    # Entries of every group that ends within the limit.
    group_end = np.searchsorted(labels, labels, side="right")
    fits = group_end <= limit
    taken = order[: int(np.argmin(fits)) if not fits.all() else len(order)]
    return np.sort(taken)
