"""Steps of the neural quantum state: initial model, sampling, training.

Deterministic given the checkpoint, the seed and the iteration: the initial weights come
from the stream ("nqs-init", SYSTEM), the samples from ("nqs-sample", ITERATION), the
mini-batches from ("nqs-train", ITERATION) (see :mod:`hinqs.seeding`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from hinqs.io.atomic import write_json
from hinqs.io.determinants import validate_determinants
from hinqs.io.files import read_determinants, read_samples, write_samples
from hinqs.io.hamiltonian import active_shape, read_meta
from hinqs.nqs.settings import NQSSettings
from hinqs.subspace.settings import ExpansionSettings


@dataclass(frozen=True)
class InitReport:
    """The initial model's shape."""

    norb: int
    nelec: tuple[int, int]
    n_parameters: int


def init_model(
    nqs: NQSSettings, seed: int, system: str, hamiltonian: str | os.PathLike[str], out: str | os.PathLike[str]
) -> InitReport:
    """A fresh checkpoint shaped by the Hamiltonian (norb, nelec), weights from the seed."""
    from hinqs.errors import InputError
    from hinqs.nqs.checkpoint import init_checkpoint, save_checkpoint

    norb, nelec = active_shape(read_meta(hamiltonian), hamiltonian)
    try:
        state = init_checkpoint(norb, nelec, nqs.as_dict(), seed=seed, system=system)
    except ValueError as exc:
        raise InputError(f"cannot build the model: {exc}") from None
    save_checkpoint(state, out)
    return InitReport(norb, nelec, sum(p.numel() for p in state.model.parameters()))


def _load(model: str | os.PathLike[str], device_name: str, hamiltonian: str | os.PathLike[str] | None) -> Any:
    """The checkpoint on the chosen device, with deterministic kernels configured first.

    With ``hamiltonian`` a model of another system (other norb or nelec) is refused.
    """
    from hinqs.nqs.checkpoint import load_checkpoint
    from hinqs.nqs.device import configure_determinism, resolve_device

    norb, nelec = active_shape(read_meta(hamiltonian), hamiltonian) if hamiltonian else (None, None)
    device = resolve_device(device_name)
    configure_determinism(device)
    return load_checkpoint(model, device, norb=norb, nelec=nelec), device


def _draw(nqs: NQSSettings, state: Any, seed: int, iteration: int) -> Any:
    """This iteration's samples from the network, or from the control ``nqs.sampler`` names."""
    from hinqs.nqs.controls import no_samples, uniform_samples
    from hinqs.nqs.sampler import sample_for_iteration
    from hinqs.seeding import numpy_stream

    if nqs.sampler == "uniform":
        rng = numpy_stream(seed, "uniform-sample", iteration)
        return uniform_samples(state.config.norb, state.config.nelec, nqs.samples, rng)
    if nqs.sampler == "none":
        return no_samples()
    return sample_for_iteration(state.model, nqs.samples, seed, iteration, nqs.temperature, nqs.max_batch)


def sample(
    nqs: NQSSettings,
    seed: int,
    model: str | os.PathLike[str],
    iteration: int,
    out: str | os.PathLike[str],
    *,
    stats: str | os.PathLike[str] | None = None,
    previous_subspace: str | os.PathLike[str] | None = None,
    hamiltonian: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Draw ``nqs.samples`` samples; write the unique determinants and return the statistics.

    With ``previous_subspace`` the statistics count the new determinants;
    with ``hamiltonian`` the model must be of that system.
    """
    state, device = _load(model, nqs.device, hamiltonian)
    if nqs.samples is None:
        from hinqs.errors import InputError

        raise InputError("nqs.samples is null: it is derived from the system (RunSettings.for_system)")
    started = time.perf_counter()
    drawn = _draw(nqs, state, seed, iteration)
    wall = time.perf_counter() - started
    validate_determinants(drawn.alpha, drawn.beta, state.config.norb, state.config.nelec)
    dets = drawn.determinants
    report: dict[str, Any] = {
        "iteration": iteration,
        "seed": seed,
        "device": str(device),
        "sampler": nqs.sampler,
        "n_samples": nqs.samples,
        "temperature": nqs.temperature,
        "n_unique": len(dets),
        "max_count_fraction": float(drawn.counts.max() / nqs.samples) if len(dets) else 0.0,
        "sampled_mass": float(np.exp(drawn.log_prob).sum()),
        "wall_s": wall,
    }
    if previous_subspace:
        from hinqs.nqs.diagnostics import new_against

        report.update(new_against(dets, read_determinants(previous_subspace, "previous subspace"), nqs.samples))
    if stats:  # side file first: see hinqs.io.atomic
        write_json(stats, report)
    write_samples(out, drawn)
    return report


def _first_order(
    state: Any,
    hamiltonian: str | os.PathLike[str] | None,
    expansion: ExpansionSettings | None,
    limit: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The heaviest determinants of the state's first-order correction (hinqs.subspace.first_order)."""
    from hinqs.errors import InputError
    from hinqs.io.hamiltonian import load_hamiltonian, solved_energy
    from hinqs.subspace.first_order import first_order_determinants

    if hamiltonian is None or expansion is None:
        raise InputError("nqs.target first_order needs the Hamiltonian (--hamiltonian); or set nqs.target: state")
    ham = load_hamiltonian(hamiltonian)
    nelec = (int(ham.nelec[0]), int(ham.nelec[1]))
    energy = solved_energy(state, ham)  # the solver's, when state.npz names these integrals
    found = first_order_determinants(state.sorted(), ham.hcore, ham.eri, nelec, expansion, limit, energy)
    return found.alpha, found.beta, found.weight


@dataclass(frozen=True)
class TrainStepRecord:
    """What a train step wrote beside the checkpoint (its history), and on what: the trainer's
    own report (:class:`hinqs.nqs.trainer.TrainReport`) is part of ``history``."""

    history: dict[str, Any]
    n_teacher: int
    device: str


def _state_kl(state: Any, target: Any, nqs: NQSSettings, iteration: int) -> float:
    """KL(state's |c|^2 || model) on a bounded evaluation set: how far the model is from the state."""
    from hinqs.nqs.trainer import eval_set, kl_on

    return kl_on(state.model, target, eval_set(target, iteration, state.seed, nqs.eval_determinants))[0]


def _target_moved(state: Any, kl_now: float, tol: float) -> bool:
    """Whether the new state is farther from the warm-started model than the last one was after training.

    The previous stage recorded its model's KL to its own state (``kl_state``) and whether
    it converged. If it converged (the model sat at its plateau) and the model is no farther
    from this iteration's state (within ``tol``, relative), the target has not moved:
    training would earn little and costs an epoch budget plus the first-order determinants.
    Without a record (a fresh model, an older checkpoint), after a stage cut by the epoch
    ceiling, or with ``tol`` 0, it has moved.
    """
    last = state.history[-1] if state.history else {}
    if tol <= 0 or not last.get("converged") or last.get("kl_state") is None:
        return True  # a stage that hit the epoch ceiling was still learning: go on
    return kl_now > last["kl_state"] * (1.0 + tol)


def _teacher(
    nqs: NQSSettings, state: Any, teacher: str | os.PathLike[str], iteration: int, first_order: Any
) -> tuple[Any, Any, float, bool]:
    """The training target, the state-only target, its KL before training and whether to train.

    The state-only target comes first (cheap); the first-order determinants (tens of seconds
    at 52 qubits) are computed only for a stage that trains.
    """
    from hinqs.nqs.teacher import read_teacher, teacher_from_amplitudes

    kept: dict[str, Any] = {}
    options = {"max_determinants": nqs.max_teacher_determinants, "min_weight": nqs.teacher_min_weight}
    cfg = state.config
    plain = read_teacher(teacher, norb=cfg.norb, nelec=cfg.nelec, first_order=lambda g: kept.update(g=g), **options)
    kl_state = _state_kl(state, plain, nqs, iteration)
    trains = nqs.sampler == "trained" and _target_moved(state, kl_state, nqs.train_tol)
    if not (trains and first_order is not None):
        return plain, plain, kl_state, trains
    ground = kept["g"]
    found = first_order(ground)
    target = teacher_from_amplitudes(ground.strs_a, ground.strs_b, ground.amplitudes, first_order=found,
                                     first_order_share=nqs.first_order_share, **options)  # fmt: skip
    return target, plain, kl_state, trains


def _timed_first_order(
    nqs: NQSSettings, hamiltonian: Any, expansion: ExpansionSettings | None, timer: dict[str, float]
) -> Any:
    """The first-order determinants of a ground state, timed into ``timer``; torch's thread count
    is put back afterwards (:func:`hinqs.threads.torch_threads`)."""

    def first_order(ground: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from hinqs.threads import torch_threads

        started = time.perf_counter()
        with torch_threads():
            found = _first_order(ground, hamiltonian, expansion, nqs.first_order_determinants)
        timer["first_order_s"] = time.perf_counter() - started
        return found

    return first_order


def train(
    nqs: NQSSettings,
    model: str | os.PathLike[str],
    teacher: str | os.PathLike[str],
    iteration: int,
    out: str | os.PathLike[str],
    *,
    history: str | os.PathLike[str] | None = None,
    previous_samples: str | os.PathLike[str] | None = None,
    probe_samples: int = 0,
    hamiltonian: str | os.PathLike[str] | None = None,
    expansion: ExpansionSettings | None = None,
) -> TrainStepRecord:
    """Train the model on the ground state (``teacher``) and write the next checkpoint.

    The target is the state's |c|^2, with ``nqs.target: first_order`` plus its first-order
    correction's heaviest determinants over the excitations ``expansion`` scores (needs
    ``hamiltonian``). The model is warm-started (weights and Adam's state from ``model``);
    when the new state is no farther from it than the last state was after training, the
    stage trains no epoch (``skipped``). With ``previous_samples`` the history records the
    model's mass on them before and after (a collapse check) and, with ``probe_samples``,
    how many new determinants a probe sampling finds. With ``hamiltonian`` the model must be
    of that system.
    """
    from hinqs.nqs.checkpoint import save_checkpoint
    from hinqs.nqs.trainer import train as train_model

    state, device = _load(model, nqs.device, hamiltonian)
    timer: dict[str, float] = {"first_order_s": 0.0}
    first_order = _timed_first_order(nqs, hamiltonian, expansion, timer)
    wants_first_order = nqs.target == "first_order" and nqs.first_order_determinants > 0
    target, plain, kl_state, trains = _teacher(
        nqs, state, teacher, iteration, first_order if wants_first_order else None
    )
    report = train_model(
        state,
        target,
        iteration,
        nqs.epochs if trains else 0,
        learning_rate=nqs.learning_rate,
        smoothing=nqs.smoothing,
        batch_size=nqs.batch_size or None,
        tol=nqs.train_tol,
        eval_determinants=nqs.eval_determinants,
        check_every=nqs.check_every,
    )
    state.history[-1]["kl_state"] = _state_kl(state, plain, nqs, iteration) if report.losses else kl_state
    skipped = nqs.sampler == "trained" and not trains
    state.history[-1]["converged"] = report.converged or skipped  # a skipped stage keeps its plateau
    data = {**report.as_dict(), "device": str(device), "seed": state.seed, "target": nqs.target,
            "first_order_s": timer["first_order_s"], "kl_state_before": kl_state,
            "kl_state_after": state.history[-1]["kl_state"], "skipped": skipped}  # fmt: skip
    if previous_samples is not None:
        from hinqs.nqs.diagnostics import previous_summary

        data["previous"] = previous_summary(state, nqs, iteration, read_samples(previous_samples), probe_samples)
    if history:  # side file first: see hinqs.io.atomic
        write_json(history, data)
    save_checkpoint(state, out)
    return TrainStepRecord(data, len(target), str(device))
