"""The NQS model and its unique-sample sampler: exact support, normalisation, sampling statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from hinqs.io.determinants import popcount, validate_determinants
from hinqs.nqs.exact import enumerate_determinants, exact_distribution
from hinqs.nqs.model import BOS, NQSConfig, build_model, states_from_strings
from hinqs.nqs.sampler import sample_for_iteration, sample_unique

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# (norb, (n_alpha, n_beta)): LiH/STO-3G, open shells both ways, empty and full spins.
SYSTEMS = [(6, (2, 2)), (7, (3, 1)), (5, (1, 3)), (4, (4, 0)), (3, (0, 0)), (1, (1, 1)), (9, (4, 4))]


def peaked_model(norb: int, nelec: tuple[int, int], seed: int = 3, scale: float = 150.0):
    """A model whose distribution is far from uniform (scaled output head), for sharper tests."""
    model = build_model(NQSConfig(norb, *nelec, 32, 2, 4), seed)
    with torch.no_grad():
        model.head.weight.mul_(scale)
    return model


@pytest.mark.parametrize(("norb", "nelec"), SYSTEMS)
def test_every_sample_has_the_right_electron_counts(norb, nelec):
    model = peaked_model(norb, nelec, scale=20.0)
    result = sample_unique(model, 5000, np.random.default_rng(0), 1.0, 16384)
    validate_determinants(result.alpha, result.beta, norb, nelec)
    assert np.all(popcount(result.alpha) == nelec[0]) and np.all(popcount(result.beta) == nelec[1])
    assert result.counts.sum() == 5000 and np.all(result.counts > 0)
    pairs = np.stack([result.alpha, result.beta], axis=1)
    assert len(np.unique(pairs, axis=0)) == len(pairs), "determinants must be unique"


@pytest.mark.parametrize(("norb", "nelec"), [(6, (2, 2)), (7, (3, 1)), (5, (1, 3))])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_probabilities_of_all_valid_determinants_sum_to_one(norb, nelec, temperature):
    model = peaked_model(norb, nelec)
    _, _, p = exact_distribution(model, temperature)
    assert abs(p.sum() - 1.0) < 1e-10
    assert np.all(p > 0), "every valid determinant must be reachable"


def test_invalid_determinants_have_zero_probability():
    model = peaked_model(6, (2, 2))
    alpha = np.array([0b11, 0b111, 0b1, 0b110000], dtype=np.uint64)
    beta = np.array([0b11, 0b11, 0b11, 0b1], dtype=np.uint64)
    log_p = model.log_prob(alpha, beta)
    assert np.isfinite(log_p[0])
    assert np.all(np.isneginf(log_p[1:]))


def test_cached_steps_equal_the_full_forward_pass():
    model = peaked_model(7, (3, 1), scale=1.0)
    alpha, beta = enumerate_determinants(7, (3, 1))
    states = states_from_strings(alpha[:50], beta[:50], 7)
    with torch.no_grad():
        full = model.logits(states)
        tokens = torch.full((50,), BOS, dtype=torch.long)
        cache = None
        for pos in range(7):
            step, cache = model.step(tokens, pos, cache)
            assert torch.allclose(step, full[:, pos], atol=1e-5)
            tokens = states[:, pos]


@pytest.mark.parametrize(("temperature", "max_batch"), [(1.0, 16384), (2.0, 16384), (0.7, 4)])
def test_sample_frequencies_match_the_model(temperature, max_batch):
    """Chi-square of 200k samples against exp(log_prob) over all 225 LiH determinants (fixed seed)."""
    model = peaked_model(6, (2, 2))
    alpha, beta, p = exact_distribution(model, temperature)
    n = 200_000
    result = sample_unique(model, n, np.random.default_rng(11), temperature=temperature, max_batch=max_batch)
    index = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(alpha, beta, strict=True))}
    observed = np.zeros(len(p))
    for a, b, c in zip(result.alpha, result.beta, result.counts, strict=True):
        observed[index[(int(a), int(b))]] = c
    expected = n * p
    big = expected >= 5  # pool the rare bins into one
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    chi2, pvalue = stats.chisquare(obs, exp)
    assert pvalue > 1e-3, f"chi2={chi2:.1f} over {len(obs)} bins, p={pvalue:.2e}"
    assert p.max() > 20 * p.min(), "the test distribution should be far from uniform"
    # The sampler's own log-probabilities are the model's.
    tempered = model.log_prob(result.alpha, result.beta, temperature)
    np.testing.assert_allclose(result.log_prob_sampled, tempered, atol=1e-5)
    np.testing.assert_allclose(result.log_prob, model.log_prob(result.alpha, result.beta), atol=1e-5)


def test_temperature_flattens_and_sharpens():
    model = peaked_model(6, (2, 2))
    counts = {
        t: len(sample_unique(model, 3000, np.random.default_rng(0), temperature=t, max_batch=16384))
        for t in (0.5, 1.0, 3.0)
    }
    assert counts[0.5] < counts[1.0] < counts[3.0]


def test_cost_follows_unique_determinants_not_samples():
    """A billion samples cost one cached step per unique prefix and orbital, at most norb x unique rows."""
    model = peaked_model(9, (4, 4), scale=400.0)
    rows = []
    step = model.step

    def counting_step(tokens, position, cache):
        rows.append(len(tokens))
        return step(tokens, position, cache)

    model.step = counting_step
    huge = sample_unique(model, 10**9, np.random.default_rng(0), 1.0, 16384)
    assert huge.counts.sum() == 10**9
    assert len(rows) == 9  # one batched step per orbital (no chunking needed)
    assert sum(rows) <= 9 * len(huge) < 10**5


def test_same_seed_same_samples_and_chunking_is_exact():
    model = peaked_model(9, (4, 4), scale=20.0)
    first = sample_for_iteration(model, 20000, seed=5, iteration=3, temperature=1.0, max_batch=16384)
    again = sample_for_iteration(model, 20000, seed=5, iteration=3, temperature=1.0, max_batch=16384)
    other = sample_for_iteration(model, 20000, seed=5, iteration=4, temperature=1.0, max_batch=16384)
    for name in ("alpha", "beta", "counts", "log_prob"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not (len(first) == len(other) and np.array_equal(first.counts, other.counts))
    rows = []
    step = model.step

    def counting_step(tokens, position, cache):
        rows.append(len(tokens))
        return step(tokens, position, cache)

    model.step = counting_step
    chunked = sample_for_iteration(model, 5000, seed=5, iteration=3, temperature=1.0, max_batch=64)
    assert max(rows) <= 64, "no batch may hold more than max_batch prefixes"
    validate_determinants(chunked.alpha, chunked.beta, 9, (4, 4))
    assert chunked.counts.sum() == 5000
    alpha, beta, counts = chunked  # unpacks like a tuple
    assert len(alpha) == len(beta) == len(counts) == len(chunked)


def test_zero_samples_and_bad_arguments():
    model = peaked_model(4, (1, 1))
    empty = sample_unique(model, 0, np.random.default_rng(0), 1.0, 16384)
    assert len(empty) == 0 and empty.alpha.dtype == np.uint64
    with pytest.raises(ValueError):
        sample_unique(model, 10, np.random.default_rng(0), temperature=0.0, max_batch=16384)
    with pytest.raises(ValueError):
        sample_unique(model, 10, np.random.default_rng(0), temperature=1.0, max_batch=3)
    with pytest.raises(ValueError):
        NQSConfig(4, 5, 1, 32, 2, 4)


def test_same_seed_same_initial_weights():
    first = build_model(NQSConfig(6, 2, 2, 32, 2, 4), 42).state_dict()
    second = build_model(NQSConfig(6, 2, 2, 32, 2, 4), 42).state_dict()
    third = build_model(NQSConfig(6, 2, 2, 32, 2, 4), 43).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)
