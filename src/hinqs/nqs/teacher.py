"""The training target: the SQD ground state's |c|^2 over its alpha x beta product space.

The SQD engine writes ``state.npz`` with ``ci_strs_a`` (M uint64), ``ci_strs_b`` (N uint64)
and ``amplitudes`` (M x N float64, normalised): the ground state over every pair
``(ci_strs_a[i], ci_strs_b[j])``. The teacher is ``|amplitudes[i, j]|^2`` over those pairs:
the real weights of the product state, not a product of alpha and beta marginals (which
would credit determinants the state does not contain with weight).

Truncation rule, so that a large product space (hundreds of thousands of pairs) stays cheap
to train on: after normalising, drop pairs with weight below ``min_weight`` (1e-12); if more
than ``max_determinants`` remain keep the ``max_determinants`` heaviest, ties at the cut
broken by position in the product (row-major over ``i``, ``j``); renormalise what is kept.
The kept weight (before renormalising) is reported, so a cut that drops real weight shows.

Hamiltonian-informed target (``nqs.target: first_order``): the determinants of the state's
first-order correction, ``|<x|H|Psi>/(E - H_xx)|^2`` outside the subspace
(:mod:`hinqs.subspace.first_order`, computed by the step), join the teacher with those
weights, so that the teacher is ``|Psi + Psi1|^2`` normalised: probability mass where the
state is going, not only where it has been.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hinqs.errors import InputError
from hinqs.io.determinants import check_strings, validate_determinants
from hinqs.io.files import GroundState, read_state

FirstOrder = tuple[np.ndarray, np.ndarray, np.ndarray]  # alpha, beta, weight outside the state


@dataclass(frozen=True)
class Teacher:
    """A normalised distribution over determinants (paired uint64 CI strings)."""

    alpha: np.ndarray
    beta: np.ndarray
    probs: np.ndarray  # float64, sums to 1
    n_alpha_strings: int  # M
    n_beta_strings: int  # N
    n_above_min_weight: int  # pairs with weight >= min_weight, before the cap
    kept_weight: float  # fraction of |c|^2 the kept pairs carry, before renormalising
    n_first_order: int = 0  # determinants from the first-order correction
    first_order_share: float = 0.0  # teacher probability on them
    in_state: np.ndarray | None = None  # bool per determinant: from the state (True) or first order

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def entropy(self) -> float:
        """Shannon entropy (nats), the floor of the cross-entropy: KL = CE - entropy."""
        p = self.probs[self.probs > 0]
        return float(-(p * np.log(p)).sum())

    def summary(self) -> dict[str, float | int]:
        return {
            "n_alpha_strings": self.n_alpha_strings,
            "n_beta_strings": self.n_beta_strings,
            "n_product": self.n_alpha_strings * self.n_beta_strings,
            "n_above_min_weight": self.n_above_min_weight,
            "n_kept": len(self),
            "kept_weight": self.kept_weight,
            "n_first_order": self.n_first_order,
            "first_order_share": self.first_order_share,
            "entropy": self.entropy,
        }


def _top_indices(weights: np.ndarray, keep: np.ndarray, max_determinants: int) -> np.ndarray:
    """Flat indices of the heaviest ``max_determinants`` among ``keep``, ties by index, sorted."""
    if len(keep) <= max_determinants:
        return keep
    w = weights[keep]
    cut = np.partition(w, len(w) - max_determinants)[len(w) - max_determinants]
    above = keep[w > cut]
    ties = keep[w == cut][: max_determinants - len(above)]
    return np.sort(np.concatenate([above, ties]))


def _normalised_weights(amplitudes: np.ndarray, shape: tuple[int, int], max_determinants: int) -> np.ndarray:
    """|c|^2 of the state, flat and summing to one; a state that cannot teach is refused in one line."""
    if amplitudes.shape != shape:
        raise InputError(f"teacher amplitudes have shape {amplitudes.shape}, expected {shape} (ci_strs_a x ci_strs_b)")
    if max_determinants < 1:
        raise InputError("the teacher must keep at least one determinant")
    weights = np.abs(amplitudes).astype(np.float64, copy=False).reshape(-1) ** 2
    if not np.all(np.isfinite(weights)):
        raise InputError("teacher amplitudes contain non-finite values")
    total = weights.sum()
    if total <= 0:
        raise InputError("teacher amplitudes are all zero")
    return weights / total


def _add_first_order(
    pairs: np.ndarray, kept: np.ndarray, first_order: FirstOrder, min_weight: float, share: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The state's pairs and weights followed by the first-order ones above ``min_weight``
    (rescaled to carry ``share`` of the teacher), and which of them came from the state."""
    fa, fb, fw = (np.asarray(x) for x in first_order)
    mask = fw >= min_weight
    extra = fw[mask]
    if share is not None and extra.sum() > 0:
        extra = extra * (share / (1.0 - share) * kept.sum() / extra.sum())
    pairs = np.concatenate([pairs, np.stack([fa[mask], fb[mask]], axis=1).astype(np.uint64)])
    origin = np.concatenate([np.ones(len(kept), bool), np.zeros(int(mask.sum()), bool)])
    return pairs, np.concatenate([kept, extra]), origin


def teacher_from_amplitudes(
    ci_strs_a: np.ndarray,
    ci_strs_b: np.ndarray,
    amplitudes: np.ndarray,
    *,
    max_determinants: int,
    min_weight: float,
    first_order: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    first_order_share: float | None = None,
) -> Teacher:
    """Build the teacher from a product-space ground state (see the module docstring for the cut).

    ``first_order``: ``(alpha, beta, weight)`` of determinants outside the state, weights
    relative to the normalised state; those above ``min_weight`` join the teacher, with
    ``first_order_share`` rescaled to carry that share of it.
    """
    ci_strs_a = np.asarray(ci_strs_a, dtype=np.uint64).reshape(-1)
    ci_strs_b = np.asarray(ci_strs_b, dtype=np.uint64).reshape(-1)
    shape = (len(ci_strs_a), len(ci_strs_b))
    weights = _normalised_weights(np.asarray(amplitudes), shape, max_determinants)
    keep = np.flatnonzero(weights >= min_weight)
    if len(keep) == 0:
        keep = np.array([int(np.argmax(weights))])
    chosen = _top_indices(weights, keep, max_determinants)
    rows, cols = np.divmod(chosen, shape[1])
    kept = weights[chosen]
    # Sorted by (alpha, beta); a CI string listed twice would repeat a determinant: merge its weight.
    pairs = np.stack([ci_strs_a[rows], ci_strs_b[cols]], axis=1)
    weights_kept, origin = kept, np.ones(len(kept), bool)
    if first_order is not None:
        pairs, weights_kept, origin = _add_first_order(pairs, kept, first_order, min_weight, first_order_share)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    probs = np.bincount(inverse, weights=weights_kept, minlength=len(unique))
    in_state = np.zeros(len(unique), bool)
    in_state[inverse[origin]] = True
    probs = probs / probs.sum()
    return Teacher(
        alpha=unique[:, 0].copy(),
        beta=unique[:, 1].copy(),
        probs=probs,
        n_alpha_strings=shape[0],
        n_beta_strings=shape[1],
        n_above_min_weight=len(keep),
        kept_weight=float(kept.sum()),
        n_first_order=int((~in_state).sum()),
        first_order_share=float(probs[~in_state].sum()),
        in_state=in_state,
    )


def read_teacher(
    path: str | os.PathLike[str],
    *,
    norb: int | None = None,
    nelec: tuple[int, int] | None = None,
    max_determinants: int,
    min_weight: float,
    first_order: FirstOrder | Callable[[GroundState], FirstOrder] | None = None,
    first_order_share: float | None = None,
) -> Teacher:
    """The NQS training target from a ``state.npz``; with ``norb``/``nelec`` check the electron counts.

    ``first_order`` may be a function of the state, called once the state has passed the
    checks (the file is read once, and a state of another system is refused as such).
    """
    state = read_state(path)
    if norb is not None and nelec is not None:
        # Every string, not only those the truncation keeps: a state of another system is refused whole.
        for key, count in (("ci_strs_a", nelec[0]), ("ci_strs_b", nelec[1])):
            check_strings(
                getattr(state, key.removeprefix("ci_")),
                norb,
                count,
                f"{path}: teacher does not match the model: {key}",
                "the model",
            )
    if callable(first_order):
        first_order = first_order(state)
    teacher = teacher_from_amplitudes(
        state.strs_a,
        state.strs_b,
        state.amplitudes,
        max_determinants=max_determinants,
        min_weight=min_weight,
        first_order=first_order,
        first_order_share=first_order_share,
    )
    if norb is not None and nelec is not None:
        try:
            validate_determinants(teacher.alpha, teacher.beta, norb, nelec)
        except ValueError as exc:
            raise InputError(f"{path}: teacher does not match the model: {exc}") from None
    return teacher
