"""Train the model towards the teacher: minimise the cross-entropy, i.e. KL(teacher || model).

The loss is ``-sum_x q(x) log p(x)`` over the teacher's determinants. Up to ``batch_size``
determinants (256) it is exact (full batch, in chunks with gradients accumulated): no
random numbers, and the loss curve is the exact cross-entropy. A larger teacher (the cap is
a few thousand, :mod:`hinqs.nqs.teacher`) is handled with mini-batches: each epoch draws
``batch_size`` determinants from ``q`` (with replacement) from the stream
``("nqs-train", iteration)``, an unbiased estimate of the same gradient at a fixed cost
per epoch (~35 ms for norb 16 on one CPU core with the default model, so 100 epochs take
a few seconds; 1024 would take 13 s). One epoch is one Adam step. ``batch_size=None``
forces full batch.

Guard against collapse: a model trained to exactly the teacher puts all its probability on
determinants the subspace already has, and the next sampling finds nothing new. ``smoothing``
(epsilon) mixes each conditional target with the uniform choice among the allowed states
(label smoothing along the teacher's paths): the optimum is
``p(s | prefix) = (1 - eps) q(s | prefix) + eps / n_allowed``, so every branch next to a
teacher path keeps a probability of order ``eps``, and a fraction of the next samples
leaves the known support. The report says how much of the model's mass sits on the teacher
and (with :func:`support_mass`, :func:`probe_new`) on the previous samples, and how many new
determinants a probe sampling finds.

Adam's state lives in :class:`~hinqs.nqs.checkpoint.NQSState` and carries over between
iterations.

Python API::

    report = train(state, teacher, iteration=k, epochs=100, learning_rate=1e-3, smoothing=0.01, batch_size=256)
    report.losses, report.kl_before, report.kl_after
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from hinqs.nqs.checkpoint import NQSState
from hinqs.nqs.model import N_STATES, AutoregressiveNQS, states_from_strings
from hinqs.nqs.sampler import sample_unique
from hinqs.nqs.teacher import Teacher
from hinqs.seeding import numpy_stream

CHUNK = 8192  # determinants per forward pass; bounds training memory


@dataclass
class TrainReport:
    """What one training stage did; ``as_dict`` is what ``history.json`` holds."""

    iteration: int
    epochs: int
    epochs_done: int  # epochs of this iteration done in total (more than `epochs` after a resume)
    learning_rate: float
    smoothing: float
    batch_size: int | None
    losses: list[float]  # objective per epoch (before that epoch's step)
    kl: list[float]  # KL(teacher || model) per epoch before its step (full-batch mode only)
    kl_before: float
    kl_after: float
    teacher_mass_before: float  # model probability on the teacher's determinants
    teacher_mass_after: float
    teacher: dict[str, Any]
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kl_reduction(self) -> float:
        return self.kl_before / self.kl_after if self.kl_after > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data["kl_reduction"] = self.kl_reduction
        return {**data, **extra}


def _objective(
    model: AutoregressiveNQS, states: torch.Tensor, weights: torch.Tensor, smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted (smoothed) cross-entropy of a chunk, and the chunk's log p(x) (detached).

    ``where`` + sum instead of ``gather``: the latter's backward is a scatter-add, which is
    non-deterministic on CUDA.
    """
    log_cond, mask = model.conditional_log_probs(states)
    chosen = F.one_hot(states, N_STATES).bool()
    log_p = torch.where(chosen, log_cond, 0.0).sum((-1, -2))
    loss = -(weights * log_p).sum()
    if smoothing:
        uniform = (torch.where(mask, log_cond, 0.0).sum(-1) / mask.sum(-1)).sum(-1)
        loss = (1.0 - smoothing) * loss - smoothing * (weights * uniform).sum()
    return loss, log_p.detach()


@torch.no_grad()
def _log_probs(model: AutoregressiveNQS, states: torch.Tensor) -> torch.Tensor:
    parts = [model.log_prob_states(states[i : i + CHUNK]) for i in range(0, len(states), CHUNK)]
    return torch.cat(parts)


def kl_divergence(model: AutoregressiveNQS, teacher: Teacher) -> tuple[float, float]:
    """KL(teacher || model) in nats and the model's total probability on the teacher's support."""
    states = states_from_strings(teacher.alpha, teacher.beta, model.config.norb).to(model.device)
    log_p = _log_probs(model, states).cpu().numpy()
    q = teacher.probs
    kl = float(np.sum(q * (np.log(q) - log_p)))
    return kl, float(np.exp(log_p).sum())


def _record(state: NQSState, report: TrainReport, teacher: Teacher) -> None:
    """A short line of this training call in the checkpoint's history."""
    state.history.append(
        {
            "iteration": report.iteration,
            "epochs": report.epochs,
            "kl_before": report.kl_before,
            "kl_after": report.kl_after,
            "loss_last": report.losses[-1] if report.losses else None,
            "teacher_kept": len(teacher),
        }
    )


def _epoch(
    state: NQSState,
    states: torch.Tensor,
    q: torch.Tensor,
    teacher: Teacher,
    generator: np.random.Generator,
    batch_size: int | None,
    smoothing: float,
) -> tuple[float, float]:
    """One Adam step over the whole teacher (``batch_size`` None) or a drawn mini-batch.

    Returns the objective and the cross-entropy of the teacher under the model before the step.
    """
    model = state.model
    state.optimizer.zero_grad(set_to_none=True)
    if batch_size is None:
        batches = [(states[i : i + CHUNK], q[i : i + CHUNK]) for i in range(0, len(states), CHUNK)]
    else:
        picks = torch.from_numpy(generator.choice(len(teacher), size=batch_size, p=teacher.probs))
        picked = states[picks.to(model.device)]
        uniform = torch.full((batch_size,), 1.0 / batch_size, dtype=torch.float64, device=model.device)
        batches = [(picked[i : i + CHUNK], uniform[i : i + CHUNK]) for i in range(0, batch_size, CHUNK)]
    total = 0.0
    cross_entropy = 0.0
    for chunk_states, chunk_weights in batches:
        loss, log_p = _objective(model, chunk_states, chunk_weights, smoothing)
        loss.backward()
        total += float(loss.detach())
        cross_entropy -= float((chunk_weights * log_p).sum())
    state.optimizer.step()
    return total, cross_entropy


def train(
    state: NQSState,
    teacher: Teacher,
    iteration: int,
    epochs: int,
    *,
    learning_rate: float | None = None,
    smoothing: float,
    batch_size: int | None,
) -> TrainReport:
    """Run ``epochs`` Adam steps on ``state`` (in place) towards ``teacher``; return the report.

    ``state.iteration``/``epochs_done`` and the training stream are updated, so that saving
    the state after ``train(k, 4)`` and calling ``train(k, 6)`` on the loaded copy gives the
    same weights as ``train(k, 10)``.
    """
    if epochs < 0 or not 0.0 <= smoothing < 1.0:
        raise ValueError("epochs must be non-negative and smoothing in [0, 1)")
    started = time.perf_counter()
    model = state.model
    if learning_rate is not None:
        state.set_learning_rate(learning_rate)
    generator = state.train_generator(iteration)
    continuing = state.iteration == iteration
    states = states_from_strings(teacher.alpha, teacher.beta, model.config.norb).to(model.device)
    q = torch.from_numpy(teacher.probs).to(model.device)
    full_batch = batch_size is None or batch_size >= len(teacher)
    kl_before, mass_before = kl_divergence(model, teacher)
    losses: list[float] = []
    kls: list[float] = []
    for _ in range(epochs):
        total, cross_entropy = _epoch(
            state, states, q, teacher, generator, None if full_batch else batch_size, smoothing
        )
        losses.append(total)
        if full_batch:
            kls.append(cross_entropy - teacher.entropy)
    kl_after, mass_after = kl_divergence(model, teacher)
    state.epochs_done = (state.epochs_done if continuing else 0) + epochs
    state.iteration = iteration
    state.train_rng = {"iteration": iteration, "state": generator.bit_generator.state}
    report = TrainReport(
        iteration=iteration,
        epochs=epochs,
        epochs_done=state.epochs_done,
        learning_rate=state.learning_rate,
        smoothing=smoothing,
        batch_size=None if full_batch else batch_size,
        losses=losses,
        kl=kls,
        kl_before=kl_before,
        kl_after=kl_after,
        teacher_mass_before=mass_before,
        teacher_mass_after=mass_after,
        teacher=teacher.summary(),
        wall_s=time.perf_counter() - started,
    )
    _record(state, report, teacher)
    return report


def support_mass(model: AutoregressiveNQS, alpha: np.ndarray, beta: np.ndarray) -> float:
    """Total model probability on a set of determinants (e.g. the previous samples).

    Near 1 means the sampler has collapsed onto them: the next sampling will find almost
    nothing new.
    """
    if len(alpha) == 0:
        return 0.0
    return float(np.exp(model.log_prob(alpha, beta)).sum())


def known_mask(alpha: np.ndarray, beta: np.ndarray, known_alpha: np.ndarray, known_beta: np.ndarray) -> np.ndarray:
    """Which of ``(alpha, beta)`` appear among ``(known_alpha, known_beta)`` (any norb up to 64)."""
    pairs = np.stack([np.asarray(known_alpha, np.uint64), np.asarray(known_beta, np.uint64)], axis=1)
    query = np.stack([np.asarray(alpha, np.uint64), np.asarray(beta, np.uint64)], axis=1)
    _, inverse = np.unique(np.concatenate([pairs, query]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return np.isin(inverse[len(pairs) :], inverse[: len(pairs)])


def probe_new(
    model: AutoregressiveNQS,
    n_samples: int,
    seed: int,
    iteration: int,
    known_alpha: np.ndarray,
    known_beta: np.ndarray,
    temperature: float,
    max_batch: int,
) -> dict[str, int]:
    """Sample ``n_samples`` from the stream ``("nqs-probe", iteration)`` and count new unique determinants.

    A separate stream, so that probing does not change what ``hinqs sample`` draws next.
    """
    samples = sample_unique(model, n_samples, numpy_stream(seed, "nqs-probe", iteration), temperature, max_batch)
    new = ~known_mask(samples.alpha, samples.beta, known_alpha, known_beta)
    return {
        "probe_samples": int(n_samples),
        "probe_unique": len(samples),
        "probe_new_unique": int(new.sum()),
        "probe_new_sample_fraction": float(samples.counts[new].sum() / max(n_samples, 1)),
    }
