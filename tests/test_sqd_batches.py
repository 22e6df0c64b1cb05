"""Batch formation, settings and the fault-injection syntax (no solves: fast)."""

from __future__ import annotations

import numpy as np
import pytest
from sqd_helpers import make_subspace as make_test_subspace

from hinqs.config import validate_config
from hinqs.errors import InputError
from hinqs.loop.settings import RunSettings, with_overrides
from hinqs.sqd import faults
from hinqs.sqd.batches import canonical_subspace, draw_indices, form_batches, subspace_strings
from hinqs.sqd.settings import ParallelSettings, SolverSettings

NORB, NELEC = 16, (5, 5)


@pytest.fixture(scope="module")
def subspace():
    return canonical_subspace(*make_test_subspace(NORB, NELEC, 800, n_strings=60))


def _batches(subspace, **kw):
    args = {"n_batches": 4, "samples_per_batch": 200, "seed": 11, "iteration": 2, **kw}
    return form_batches(subspace, NELEC, **args)


def test_a_batch_depends_only_on_seed_iteration_and_index(subspace):
    four = _batches(subspace)
    two = _batches(subspace, n_batches=2)
    for a, b in zip(two, four[:2], strict=True):
        assert np.array_equal(a.alpha, b.alpha) and np.array_equal(a.beta, b.beta)
        assert a.content_hash() == b.content_hash()
    # Different indices, iterations and seeds draw different batches.
    assert len({b.content_hash() for b in four}) == 4
    assert _batches(subspace, iteration=3)[0].content_hash() != four[0].content_hash()
    assert _batches(subspace, seed=12)[0].content_hash() != four[0].content_hash()


def test_pool_order_and_duplicates_do_not_change_batches(subspace):
    rng = np.random.default_rng(0)
    order = rng.permutation(len(subspace))
    a, b, c = subspace.alpha[order], subspace.beta[order], subspace.counts[order]
    # Duplicated entries with their counts split between the copies are the same subspace.
    split = c.astype(float)
    split[:10] /= 2
    dup = canonical_subspace(
        np.concatenate([a, a[:10]]), np.concatenate([b, b[:10]]), np.concatenate([split, split[:10]])
    )
    shuffled = canonical_subspace(a, b, c)
    for x, y, z in zip(_batches(subspace), _batches(shuffled), _batches(dup), strict=True):
        assert x.content_hash() == y.content_hash() == z.content_hash()


def test_draw_is_without_replacement_and_weighted():
    n = 50
    alpha = np.arange(n, dtype=np.uint64)
    counts = np.ones(n)
    counts[:5] = 1000.0
    subspace = canonical_subspace(alpha, alpha, counts)
    rng = np.random.default_rng(1)
    hits = np.zeros(n)
    for _ in range(200):
        chosen = draw_indices(subspace, 10, rng)
        assert len(np.unique(chosen)) == 10
        hits[chosen] += 1
    assert hits[:5].min() > 190  # heavy determinants are nearly always drawn
    assert hits[5:].mean() < 60
    # Fewer positive weights than the batch size: all of them, the rest uniform among zeros.
    zero = canonical_subspace(alpha, alpha, np.r_[np.ones(3), np.zeros(n - 3)])
    chosen = draw_indices(zero, 8, np.random.default_rng(2))
    assert set(range(3)) <= set(chosen.tolist()) and len(np.unique(chosen)) == 8


def test_small_pool_is_solved_once(subspace):
    small = canonical_subspace(subspace.alpha[:150], subspace.beta[:150], subspace.counts[:150])
    batches = _batches(small, samples_per_batch=150)
    assert len(batches) == 1 and batches[0].index == 0
    assert len(batches[0].alpha) == 150


def test_closed_shells_share_the_union_open_shells_do_not():
    a = np.array([0b00111, 0b01011], dtype=np.uint64)
    b = np.array([0b00111, 0b10101], dtype=np.uint64)
    sa, sb = subspace_strings(a, b, (3, 3))
    assert np.array_equal(sa, sb) and sa.tolist() == [0b00111, 0b01011, 0b10101]
    sa, sb = subspace_strings(a, np.array([0b011, 0b101], dtype=np.uint64), (3, 2))
    assert sa.tolist() == [0b00111, 0b01011] and sb.tolist() == [0b011, 0b101]


def test_bad_pools_are_rejected():
    with pytest.raises(ValueError):
        canonical_subspace(np.array([], dtype=np.uint64), np.array([], dtype=np.uint64))
    with pytest.raises(ValueError):
        canonical_subspace(np.array([1], dtype=np.uint64), np.array([1], dtype=np.uint64), np.array([-1.0]))


def test_settings_from_config_and_overrides():
    config = {
        "seed": 5,
        "sqd": {"solver": "lean", "n_batches": 3, "samples_per_batch": 40, "max_cycle": 50, "conv_tol": 1e-9},
        "parallel": {"executor": "sequential", "workers": 4, "threads_per_worker": 2, "retries": 0},
    }
    config["systems"] = [{"name": "h2", "geometry": "H 0 0 0; H 0 0 0.74"}]
    s = RunSettings.from_config(validate_config(config)).sqd_step(iteration=7)
    assert (s.seed, s.iteration, s.n_batches, s.samples_per_batch) == (5, 7, 3, 40)
    assert s.solver == SolverSettings("lean", 50, 1e-9, None, 0.1, True, "cpu")
    assert s.parallel == ParallelSettings("sequential", 4, 2, None, 0, 10)
    t = with_overrides(s, seed=None, n_batches=6, parallel__workers=8, solver__solver="solve_fermion")
    assert (t.seed, t.n_batches, t.parallel.workers, t.solver.solver) == (5, 6, 8, "solve_fermion")
    with pytest.raises(InputError):
        with_overrides(s, parallel__executor="threads")
    with pytest.raises(InputError):
        with_overrides(s, n_batches=0)
    with pytest.raises(InputError):
        with_overrides(s, parallel__kill_grace=0)  # the schema refuses it too


def test_fault_spec_parsing(monkeypatch):
    parsed = faults.parse("batch=1:kill, batch=2@1:raise,batch=*:sleep=2.5")
    assert parsed[0] == faults.Fault(1, None, "kill")
    assert parsed[1] == faults.Fault(2, 1, "raise")
    assert parsed[2] == faults.Fault(None, None, "sleep", 2.5)
    monkeypatch.setenv(faults.ENV_VAR, "batch=2@1:raise,batch=3:nan")
    assert faults.lookup(2, 1).action == "raise"
    assert faults.lookup(2, 2) is None
    assert faults.lookup(0, 1) is None
    with pytest.raises(ValueError, match="HINQS_FAULT_INJECT"):
        faults.parse("batch=1:explode")
