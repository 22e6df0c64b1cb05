"""Training costs what it earns: bounded evaluations, early stopping of a warm start, no stage
when the target did not move (the 52-qubit step took 260 s, three quarters of it evaluating)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hinqs.cli import main
from hinqs.loop.settings import RunSettings
from hinqs.nqs import trainer
from hinqs.nqs.checkpoint import init_checkpoint
from hinqs.nqs.exact import strings_with
from hinqs.nqs.teacher import teacher_from_amplitudes

NQS_DEFAULTS = RunSettings.defaults().nqs.as_dict()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def wide_teacher():
    """Every determinant of (8 orbitals, (3, 2)): 1,568 of them, most light."""
    a, b = strings_with(8, 3), strings_with(8, 2)
    amp = np.exp(-0.35 * np.add.outer(np.arange(len(a)), np.arange(len(b))))
    return teacher_from_amplitudes(a, b, amp / np.linalg.norm(amp), max_determinants=10**6, min_weight=1e-12)


def test_evaluation_reads_a_bounded_number_of_determinants(monkeypatch):
    """Catches an evaluation whose cost grows with the teacher (it read 147,000 determinants at 52 qubits)."""
    teacher = wide_teacher()
    state = init_checkpoint(8, (3, 2), NQS_DEFAULTS, seed=1, system="toy")
    read: list[int] = []
    log_p_of = trainer._log_p_of
    monkeypatch.setattr(trainer, "_log_p_of", lambda m, t, index: read.append(len(index)) or log_p_of(m, t, index))
    bounded = trainer.evaluate(state.model, teacher, 1, state.seed, size=100)
    assert sum(read) == 200 and bounded.kl_error > 0
    exact = trainer.evaluate(state.model, teacher, 1, state.seed)  # no bound: every determinant
    assert sum(read) == 200 + len(teacher) and exact.kl_error == 0
    assert bounded.kl == pytest.approx(exact.kl, abs=4 * bounded.kl_error)  # an estimate of the same KL
    assert bounded.mass <= exact.mass  # masses over the heaviest only: a lower bound


def test_a_warm_start_on_an_unmoved_target_stops_at_the_first_check():
    """Catches a mini-batch criterion that cannot fire early (the loss windows needed 50 epochs)
    or that always fires (a fresh model on the same target keeps going)."""
    teacher = wide_teacher()
    options = {"smoothing": 0.01, "batch_size": 64, "eval_determinants": 256, "check_every": 5}
    nqs = {**NQS_DEFAULTS, "learning_rate": 3e-3}
    fresh = trainer.train(init_checkpoint(8, (3, 2), nqs, seed=2, system="toy"), teacher, 1, 300, tol=1e-2, **options)
    assert len(fresh.losses) > 10 and fresh.kl_after < fresh.kl_before
    assert fresh.extra["kl_checks"][0] < fresh.kl_before  # each check measures the same determinants
    state = init_checkpoint(8, (3, 2), nqs, seed=2, system="toy")
    trainer.train(state, teacher, 1, 300, tol=0.0, **options)  # to convergence
    warm = trainer.train(state, teacher, 2, 300, tol=1e-2, **options)  # the next iteration, same target
    # A fresh model keeps training; the warm one stops within a few checks (measured 15 epochs).
    assert warm.converged and len(warm.losses) <= 20 < len(fresh.losses), (warm.extra, fresh.extra)


def _state_file(path, decay: float) -> None:
    """A state peaked on its first strings (``decay`` > 0) or on its last ones (< 0)."""
    a, b = strings_with(8, 3)[:10], strings_with(8, 2)[:7]
    amp = np.exp(-decay * np.add.outer(np.arange(10), np.arange(7)))
    np.savez(path, ci_strs_a=a, ci_strs_b=b, amplitudes=amp / np.linalg.norm(amp), occ_a=np.zeros(8), occ_b=np.zeros(8))


def test_the_step_skips_training_when_the_state_did_not_move(tmp_path, config_file):
    """Catches a step that pays the epochs (and the first-order determinants) for nothing, and
    one that skips when the state did move."""
    (tmp_path / "ham").mkdir()
    (tmp_path / "ham" / "meta.json").write_text(json.dumps({"norb": 8, "nelec": [3, 2]}))
    config = str(config_file({"name": "toy", "geometry": "H 0 0 0; H 0 0 0.74"}, seed=3,
                             nqs={"epochs": 400, "train_tol": 1e-2, "device": "cpu", "target": "state"}))  # fmt: skip
    ham = ["--config", config, "--hamiltonian", str(tmp_path / "ham")]
    assert main(["init-model", *ham, "--out", str(tmp_path / "m0.pt")]) == 0
    _state_file(tmp_path / "same.npz", 0.5)
    _state_file(tmp_path / "moved.npz", -0.5)

    def train(model: str, teacher: str, k: int) -> dict:
        out = ["--out", str(tmp_path / f"m{k}.pt"), "--history", str(tmp_path / f"h{k}.json")]
        args = ["train", *ham, "--model", str(tmp_path / model), "--teacher", str(tmp_path / teacher)]
        assert main([*args, "--iteration", str(k), *out]) == 0
        return json.loads((tmp_path / f"h{k}.json").read_text())

    first = train("m0.pt", "same.npz", 1)
    assert not first["skipped"] and first["converged"] and first["epochs_run"] > 0
    assert first["kl_state_after"] < first["kl_state_before"]
    again = train("m1.pt", "same.npz", 2)
    assert again["skipped"] and again["epochs_run"] == 0
    assert again["kl_state_before"] == pytest.approx(first["kl_state_after"])
    one, two = (torch.load(tmp_path / f"m{k}.pt", weights_only=True)["model_state"] for k in (1, 2))
    assert all(torch.equal(one[key], two[key]) for key in one)
    moved = train("m2.pt", "moved.npz", 3)
    assert not moved["skipped"] and moved["epochs_run"] > 0
