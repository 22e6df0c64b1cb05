"""Where the state is going: the determinants of its first-order correction, for the network to learn.

Trained on the ground state's |c|^2 alone, the network learns the subspace it came from
(mostly the HF determinant) and its samples find nothing the expansion would not. First-order
perturbation theory says where the next weight is: outside the subspace the correction is
``Psi1 = sum_x |x> <x|H|Psi> / (E - H_xx)``, and ``|Psi + Psi1|^2`` (normalised) is the
distribution of a better state. This module gives the heaviest determinants of ``Psi1``
over the same external space the PT2 expansion scores (single and double excitations of the
``top_strings`` heaviest strings, paired with the ``partner_strings`` heaviest strings of
the other spin and the single excitations of the heaviest few), from one rectangular
product of hinqs' kernel per spin channel (:func:`hinqs.subspace.expansion.h_on_block`), exact matrix elements with
Psi restricted to those partners. The NQS step adds them to the teacher
(``nqs.target: first_order``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hinqs.io.determinants import closed_shell
from hinqs.io.files import GroundState, check_state
from hinqs.subspace.expansion import h_on_block, scored_block, teacher_energy_and_diagonal
from hinqs.subspace.ranking import top_groups
from hinqs.subspace.settings import ExpansionSettings

MIN_DENOMINATOR = 1e-3  # Ha: E - H_xx never closer to zero than this (the expansion's guard too)


@dataclass(frozen=True)
class FirstOrder:
    """Determinants ``(alpha, beta)`` outside the state and their ``|<x|H|Psi>/(E - H_xx)|^2``.

    The weights are relative to the normalised state: ``|Psi|^2 = 1``, so the first-order
    state carries ``1 + weight.sum()``.
    """

    alpha: np.ndarray
    beta: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.weight)


def _channel(
    own: np.ndarray,
    other: np.ndarray,
    amps: np.ndarray,
    nelec: tuple[int, int],
    hcore: np.ndarray,
    eri: np.ndarray,
    energy: float,
    settings: ExpansionSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First-order weights of one spin channel: rows are ``own``-spin strings, columns the other spin."""
    candidates, partners, partner_amps = scored_block(own, other, amps, hcore.shape[0], settings)
    hc, hdiag, rows, cand_rows = h_on_block(hcore, eri, nelec, own, partners, partner_amps, candidates)
    outside = np.zeros(hc.shape, bool)
    outside[cand_rows] = True  # a new string with any partner
    outside[:, ~np.isin(partners, other)] = True  # a known string with a new partner
    t2 = hc**2 / np.maximum(hdiag - energy, MIN_DENOMINATOR) ** 2
    r, c = np.nonzero(outside & (t2 > 0))
    return rows[r], partners[c], t2[r, c]


def first_order_determinants(
    state: GroundState,
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    settings: ExpansionSettings,
    limit: int,
    energy: float | None = None,
) -> FirstOrder:
    """The at most ``limit`` heaviest determinants of the first-order correction of ``state``.

    Closed shells (one string set for both spins) count each determinant and its spin
    mirror; open shells score both channels. Equal weights (symmetry partners) are taken
    together or not at all (:func:`hinqs.subspace.ranking.top_groups`).
    """
    hcore, eri = np.asarray(hcore, dtype=np.float64), np.asarray(eri, dtype=np.float64)
    check_state(state, hcore.shape[0], nelec)
    amps = state.amplitudes / np.sqrt(np.vdot(state.amplitudes, state.amplitudes))
    state = GroundState(state.strs_a, state.strs_b, amps)
    if energy is None:  # the solver's is reused when known (hinqs.io.hamiltonian.solved_energy)
        energy, _ = teacher_energy_and_diagonal(state, hcore, eri, nelec)
    closed = closed_shell(nelec, state.strs_a, state.strs_b)
    ra, rb, rw = _channel(state.strs_a, state.strs_b, amps, nelec, hcore, eri, energy, settings)
    if closed:
        parts = [(ra, rb, rw), (rb, ra, rw)]
    else:
        ba, bb, bw = _channel(state.strs_b, state.strs_a, amps.T, (nelec[1], nelec[0]), hcore, eri, energy, settings)
        parts = [(ra, rb, rw), (bb, ba, bw)]
    alpha = np.concatenate([p[0] for p in parts]).astype(np.uint64)
    beta = np.concatenate([p[1] for p in parts]).astype(np.uint64)
    weight = np.concatenate([p[2] for p in parts])
    if len(weight) == 0:
        return FirstOrder(alpha, beta, weight)
    pairs, inverse = np.unique(np.stack([alpha, beta], axis=1), axis=0, return_inverse=True)
    merged = np.zeros(len(pairs))
    np.maximum.at(merged, inverse.reshape(-1), weight)  # one determinant reached from both channels
    keep = top_groups(merged, limit)
    return FirstOrder(pairs[keep, 0].copy(), pairs[keep, 1].copy(), merged[keep])
