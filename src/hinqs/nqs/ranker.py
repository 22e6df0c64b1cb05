"""The network as a ranker: score many candidate strings in batched forward passes.

The published conclusion about NQS-driven SQD at 52 qubits is that the network's samples
add nothing the PT2 expansion would not find, and that its use is to *rank* expansion
candidates: exact PT2 scoring costs one rectangular product of hinqs' kernel over
candidates x partners, a forward pass costs a few matrix products per candidate. Here a candidate string
``x`` of one spin is scored by ``log sum_b p(x, b)`` over a few partner strings ``b`` of the
other spin (the heaviest of the state), every pair in one batch (the GPU where the model
is). ``benchmarks/bench_ranker.py`` measures how well that order recalls the exact PT2 order.
"""

from __future__ import annotations

import numpy as np
import torch

from hinqs.nqs.model import AutoregressiveNQS, states_from_strings

CHUNK = 16384  # determinants per forward pass


@torch.no_grad()
def network_log_probs(model: AutoregressiveNQS, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """log p(alpha, beta) of each determinant, batched on the model's device (float64, -inf if invalid).

    The same quantity the sampler records for the determinants it draws (``Samples.log_prob``).
    """
    states = states_from_strings(alpha, beta, model.config.norb)
    parts = [model.log_prob_states(states[i : i + CHUNK].to(model.device)).cpu() for i in range(0, len(states), CHUNK)]
    return torch.cat(parts).numpy() if parts else np.zeros(0)


def rank_strings(
    model: AutoregressiveNQS, candidates: np.ndarray, partners: np.ndarray, *, alpha_candidates: bool = True
) -> np.ndarray:
    """Score of each candidate string: ``log sum_b p(x, b)`` over the ``partners`` of the other spin."""
    candidates = np.asarray(candidates, np.uint64)
    partners = np.asarray(partners, np.uint64)
    if len(candidates) == 0:
        return np.zeros(0)
    own = np.repeat(candidates, len(partners))
    other = np.tile(partners, len(candidates))
    alpha, beta = (own, other) if alpha_candidates else (other, own)
    log_p = network_log_probs(model, alpha, beta).reshape(len(candidates), len(partners))
    top = log_p.max(axis=1, keepdims=True)
    finite = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(invalid="ignore"):
        return (finite + np.log(np.exp(log_p - finite).sum(axis=1, keepdims=True)))[:, 0]
