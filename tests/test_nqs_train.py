"""Teacher construction, KL training, determinism and checkpoint resume of the NQS."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch

from hinqs.errors import InputError
from hinqs.loop.settings import RunSettings
from hinqs.nqs.checkpoint import init_checkpoint, load_checkpoint, save_checkpoint
from hinqs.nqs.exact import exact_distribution, strings_with
from hinqs.nqs.sampler import sample_for_iteration
from hinqs.nqs.teacher import read_teacher, teacher_from_amplitudes
from hinqs.nqs.trainer import evaluate, known_mask, probe_new, support_mass, train

TEACHER = {"max_determinants": 4096, "min_weight": 1e-12}  # the schema's nqs defaults

NQS_DEFAULTS = RunSettings.defaults().nqs.as_dict()

LIH = "Li 0 0 0; H 0 0 1.5949"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@cache
def lih_fci() -> tuple[np.ndarray, np.ndarray]:
    """LiH/STO-3G FCI ground state over all 15 x 15 alpha x beta strings (PySCF's string order)."""
    from pyscf import fci, gto, lib, scf
    from pyscf.fci import cistring

    # One OpenMP thread: PySCF's idle pool threads would otherwise spin against torch's.
    with lib.with_omp_threads(1):
        mol = gto.M(atom=LIH, basis="sto-3g", verbose=0)
        mf = scf.RHF(mol).run()
        _, civec = fci.FCI(mf).kernel()
    return np.asarray(cistring.make_strings(range(6), 2), dtype=np.uint64), civec


def toy_teacher(n: int = 40, seed: int = 0):
    """A product state over the first 8 alpha x 6 beta strings of (7 orbitals, (3, 1))."""
    rng = np.random.default_rng(seed)
    a, b = strings_with(7, 3)[:8], strings_with(7, 1)[:6]
    amp = rng.normal(size=(8, 6)) * np.exp(-0.4 * np.add.outer(np.arange(8), np.arange(6)))
    return teacher_from_amplitudes(a, b, amp / np.linalg.norm(amp), max_determinants=n, min_weight=1e-12)


def test_teacher_is_the_product_state_not_a_product_of_marginals():
    a = np.array([0b011, 0b101], dtype=np.uint64)
    b = np.array([0b001, 0b010], dtype=np.uint64)
    amp = np.array([[0.8, 0.0], [0.0, -0.6]])  # entangled: marginals would give 4 x 0.25-ish weights
    teacher = teacher_from_amplitudes(a, b, amp, **TEACHER)
    assert len(teacher) == 2
    np.testing.assert_array_equal(teacher.alpha, [0b011, 0b101])
    np.testing.assert_array_equal(teacher.beta, [0b001, 0b010])
    np.testing.assert_allclose(teacher.probs, [0.64, 0.36])


def test_teacher_truncation_keeps_the_heaviest_and_renormalises():
    a = np.array([1, 2, 4], dtype=np.uint64)
    b = np.array([1, 2], dtype=np.uint64)
    amp = np.sqrt(np.array([[0.4, 0.2], [0.2, 0.1], [0.1, 1e-14]]))
    teacher = teacher_from_amplitudes(a, b, amp, max_determinants=3, min_weight=1e-12)
    assert teacher.n_above_min_weight == 5  # the 1e-14 pair is below min_weight
    # 0.4 then the two 0.2 (ties broken by position in the product): pairs (1,1), (1,2), (2,1).
    assert list(zip(teacher.alpha.tolist(), teacher.beta.tolist(), strict=True)) == [(1, 1), (1, 2), (2, 1)]
    np.testing.assert_allclose(teacher.probs, [0.5, 0.25, 0.25])
    assert teacher.kept_weight == pytest.approx(0.8 / 1.0, rel=1e-9)


def test_teacher_input_errors(tmp_path):
    with pytest.raises(InputError):
        teacher_from_amplitudes(np.array([1], np.uint64), np.array([1, 2], np.uint64), np.ones((2, 2)), **TEACHER)
    with pytest.raises(InputError):
        read_teacher(tmp_path / "missing.npz", **TEACHER)
    path = tmp_path / "state.npz"
    one = np.ones((1, 1))
    np.savez(path, ci_strs_a=np.array([0b11], np.uint64), ci_strs_b=np.array([0b1], np.uint64), amplitudes=one)
    assert len(read_teacher(path, norb=4, nelec=(2, 1), **TEACHER)) == 1
    with pytest.raises(InputError, match="does not match"):
        read_teacher(path, norb=4, nelec=(2, 2), **TEACHER)


def test_training_on_lih_fci_cuts_kl_thirtyfold():
    """100 Adam steps at the default lr (1e-3) take KL(FCI || model) from ~2.7 to below a tenth of it."""
    strings, civec = lih_fci()
    teacher = teacher_from_amplitudes(strings, strings, civec, **TEACHER)
    state = init_checkpoint(6, (2, 2), NQS_DEFAULTS, seed=1, system="LiH")
    report = train(state, teacher, iteration=0, epochs=100, smoothing=0.01, batch_size=256)
    assert report.kl_before > 2.0
    assert report.kl_after < report.kl_before / 20, report.kl_after  # measured 31x (smoothing 0.01)
    assert report.kl[0] == pytest.approx(report.kl_before)
    assert report.losses[-1] < report.losses[0]
    assert report.teacher_mass_after > 0.9
    # The reported KL is the exact one over all valid determinants.
    alpha, beta, p = exact_distribution(state.model)
    q = dict(zip(zip(teacher.alpha.tolist(), teacher.beta.tolist(), strict=True), teacher.probs, strict=True))
    pairs = zip(alpha.tolist(), beta.tolist(), p, strict=True)
    exact_kl = sum(qx * np.log(qx / px) for a, b, px in pairs if (qx := q.get((a, b))))
    assert exact_kl == pytest.approx(report.kl_after, rel=1e-6)


def test_smoothing_keeps_the_sampler_exploring():
    """Trained without smoothing the model piles onto the teacher; with it, probability stays off the support."""
    teacher = toy_teacher()
    off_support = {}
    for smoothing in (0.0, 0.1):
        state = init_checkpoint(7, (3, 1), {**NQS_DEFAULTS, "learning_rate": 3e-3}, seed=2, system="toy")
        train(state, teacher, iteration=0, epochs=150, smoothing=smoothing, batch_size=256)
        off_support[smoothing] = 1.0 - support_mass(state.model, teacher.alpha, teacher.beta)
        probe = probe_new(state.model, 20000, 2, 0, teacher.alpha, teacher.beta, 1.0, 16384)
        assert probe["probe_new_sample_fraction"] == pytest.approx(off_support[smoothing], abs=0.01)
    assert off_support[0.1] > 3 * off_support[0.0]  # measured 0.021 vs 0.0039


def test_known_mask_matches_python_sets():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2**40, 300, dtype=np.uint64), rng.integers(0, 2**40, 300, dtype=np.uint64)
    ka, kb = np.concatenate([a[:100], a[150:160] + 1]), np.concatenate([b[:100], b[150:160]])
    known = set(zip(ka.tolist(), kb.tolist(), strict=True))
    expected = [(x, y) in known for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    np.testing.assert_array_equal(known_mask(a, b, ka, kb), expected)


def _loop(tmp_path, interrupt: bool):
    """init -> train(0, 10 epochs) -> sample(1) -> train(1, 6), optionally through files at every step.

    Mini-batches of 16 out of 40 determinants make training draw random numbers, so the
    resumed run must also restore the training stream mid-stage.
    """
    teacher = toy_teacher()
    state = init_checkpoint(7, (3, 1), {**NQS_DEFAULTS, "learning_rate": 5e-3}, seed=9, system="toy")

    def roundtrip(st, name):
        if not interrupt:
            return st
        save_checkpoint(st, tmp_path / name)
        return load_checkpoint(tmp_path / name)

    state = roundtrip(state, "init.pt")
    if interrupt:
        train(state, teacher, 0, 4, smoothing=0.01, batch_size=16)
        state = roundtrip(state, "mid.pt")
        train(state, teacher, 0, 6, smoothing=0.01, batch_size=16)
    else:
        train(state, teacher, 0, 10, smoothing=0.01, batch_size=16)
    state = roundtrip(state, "it0.pt")
    samples = sample_for_iteration(state.model, 3000, state.seed, 1, 1.0, 16384)
    train(state, toy_teacher(seed=1), 1, 6, smoothing=0.01, batch_size=16)
    state = roundtrip(state, "it1.pt")
    return state, samples


def test_resume_from_checkpoints_equals_an_uninterrupted_run(tmp_path):
    straight, straight_samples = _loop(tmp_path, interrupt=False)
    resumed, resumed_samples = _loop(tmp_path, interrupt=True)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    a, b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(a[i][k], b[i][k]) for i in a for k in a[i])
    np.testing.assert_array_equal(straight_samples.counts, resumed_samples.counts)
    np.testing.assert_array_equal(straight_samples.alpha, resumed_samples.alpha)
    assert resumed.epochs_done == 6 and resumed.iteration == 1
    assert straight.train_rng["state"] == resumed.train_rng["state"]


def test_an_untrained_control_reports_what_a_fresh_evaluation_of_its_model_gives():
    """0 epochs (nqs.sampler untrained/uniform/none): the report's "after" is not recomputed,
    so it must be what evaluating the untouched model gives, on the sampled (> eval_determinants) path too."""
    strings, civec = lih_fci()
    teacher = teacher_from_amplitudes(strings, strings, civec, **TEACHER)
    state = init_checkpoint(6, (2, 2), NQS_DEFAULTS, seed=3, system="LiH")
    weights = {k: v.clone() for k, v in state.model.state_dict().items()}
    # the LiH teacher is larger than 20 determinants: the KL is estimated
    report = train(state, teacher, iteration=2, epochs=0, smoothing=0.01, batch_size=256, eval_determinants=20)
    fresh = evaluate(state.model, teacher, 2, state.seed, size=20)
    assert report.kl_error > 0  # the estimated path ran
    assert (report.kl_after, report.kl_error, report.teacher_mass_after) == (fresh.kl, fresh.kl_error, fresh.mass)
    assert (report.state_mass_after, report.first_order_mass_after) == (fresh.state_mass, fresh.first_order_mass)
    assert report.kl_before == report.kl_after and report.losses == []
    assert all(torch.equal(weights[k], v) for k, v in state.model.state_dict().items())


def test_same_seed_gives_identical_trained_weights():
    teacher = toy_teacher()
    weights = []
    for seed in (4, 4, 5):
        state = init_checkpoint(7, (3, 1), NQS_DEFAULTS, seed=seed, system="toy")
        train(state, teacher, 0, 5, smoothing=0.01, batch_size=16)
        weights.append(state.model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_checkpoint(bad)
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a hinqs NQS checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
