"""The controls a trained network must beat (nqs.sampler), each run through the real loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

LIH = "Li 0 0 0; H 0 0 1.5949"


def _run(tmp_path, sampler: str, iterations: int = 2):
    from hinqs.config import validate_config
    from hinqs.loop.driver import run_loop
    from hinqs.loop.settings import RunSettings

    config = {
        "systems": [{"name": "lih", "geometry": LIH, "basis": "6-31g"}],
        "nqs": {"sampler": sampler, "samples": 300, "epochs": 5, "device": "cpu"},
        "subspace": {"max_strings": 30, "expansion": {"strings": 4}},
        "parallel": {"executor": "sequential"},
        "iterations": {"max": iterations, "tol": 1e-12, "window": 5},
        "references": {"ccsd": False},
    }
    return run_loop(RunSettings.from_config(validate_config(config)), "lih", tmp_path / sampler)


def _weights(path):
    from hinqs.io.files import read_checkpoint

    return read_checkpoint(path)["model_state"]


@pytest.mark.parametrize("sampler", ["trained", "untrained", "uniform", "none"])
def test_each_control_runs_the_loop(tmp_path, sampler):
    from hinqs.io.files import read_samples

    run = _run(tmp_path, sampler)
    assert run.iterations == 2 and run.status is not None
    first = run.system.iteration(1)
    stats = json.loads(first.sample_stats.read_text())
    samples = read_samples(first.samples)
    assert stats["sampler"] == sampler
    if sampler == "none":
        assert len(samples) == 0
    else:
        assert int(samples.counts.sum()) == 300
        for strings in (samples.alpha, samples.beta):  # 11 orbitals, 2 electrons of each spin
            assert all(bin(int(s)).count("1") == 2 and int(s) < 1 << 11 for s in strings)
    subspace = json.loads(first.subspace_stats.read_text())
    assert 0 <= subspace["network_strings_kept"] <= subspace["new_sampled_strings_kept"] + subspace["expansion_strings"]
    before, after = _weights(run.system.iteration(0).model), _weights(first.model)
    unchanged = all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    assert unchanged == (sampler != "trained")


def test_uniform_strings_are_uniform():
    """Every string of 2 electrons in 6 orbitals (15) drawn about equally often."""
    from hinqs.nqs.controls import uniform_samples

    drawn = uniform_samples(6, (2, 2), 30_000, np.random.default_rng(7))
    assert int(drawn.counts.sum()) == 30_000
    strings, counts = np.unique(np.repeat(drawn.alpha, drawn.counts), return_counts=True)
    assert len(strings) == math.comb(6, 2)
    assert counts.min() > 0.85 * 2000 and counts.max() < 1.15 * 2000
