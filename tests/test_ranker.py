"""The network as a ranker: its batched forward pass is the sampler's distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hinqs.nqs.exact import enumerate_determinants
from hinqs.nqs.model import NQSConfig, build_model
from hinqs.nqs.ranker import network_log_probs, rank_strings
from hinqs.nqs.sampler import sample_unique

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(norb: int, nelec: tuple[int, int]):
    model = build_model(NQSConfig(norb, *nelec, 32, 2, 4), 11)
    with torch.no_grad():
        model.head.weight.mul_(30.0)  # far from uniform
    return model


@pytest.mark.parametrize(("norb", "nelec"), [(8, (3, 3)), (9, (4, 2))])
def test_the_ranker_forward_pass_equals_the_sampler_log_probabilities(norb, nelec):
    model = _model(norb, nelec)
    drawn = sample_unique(model, 20000, np.random.default_rng(4), 1.0, 16384)
    ranked = network_log_probs(model, drawn.alpha, drawn.beta)
    # float32 network: the sampler evaluates growing prefixes, the ranker whole strings (~5e-8 apart)
    np.testing.assert_allclose(ranked, drawn.log_prob, rtol=0, atol=1e-6)


def test_string_scores_sum_the_partners():
    """log sum_b p(x, b) over the given partners, for alpha and for beta candidates."""
    norb, nelec = 7, (3, 2)
    model = _model(norb, nelec)
    alpha, beta = enumerate_determinants(norb, nelec)
    log_p = network_log_probs(model, alpha, beta)
    p = dict(zip(zip(alpha.tolist(), beta.tolist(), strict=True), np.exp(log_p).tolist(), strict=True))
    candidates, partners = np.unique(alpha)[:9], np.unique(beta)[:4]
    scores = rank_strings(model, candidates, partners)
    expected = [np.log(sum(p[(x, b)] for b in partners.tolist())) for x in candidates.tolist()]
    np.testing.assert_allclose(scores, expected, rtol=1e-10)
    beta_scores = rank_strings(model, np.unique(beta)[:5], np.unique(alpha)[:3], alpha_candidates=False)
    expected = [np.log(sum(p[(a, y)] for a in np.unique(alpha)[:3].tolist())) for y in np.unique(beta)[:5].tolist()]
    np.testing.assert_allclose(beta_scores, expected, rtol=1e-10)
