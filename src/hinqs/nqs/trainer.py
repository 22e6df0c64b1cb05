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

To convergence: ``epochs`` is a ceiling; with ``tol`` > 0 training stops once the mean
objective of the last ``WINDOW`` epochs is less than ``tol`` (relative) below that of the
``WINDOW`` before (the report says ``converged`` and how many epochs ran). The whole teacher
can hold millions of determinants (every |c|^2 above ``teacher_min_weight`` of a 2.25 M
product space): mini-batches convert only the drawn determinants to model inputs, and above
``EXACT_EVAL`` determinants the KL is estimated from ``EVAL_DRAWS`` draws of the teacher
(stream ``("nqs-eval", iteration)``, standard error reported) and the masses are summed over
the ``EXACT_EVAL`` heaviest determinants (lower bounds).

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
WINDOW = 25  # epochs per convergence window
EXACT_EVAL = 1 << 17  # teachers up to this size are evaluated exactly (KL, masses)
EVAL_DRAWS = 1 << 14  # teacher draws of the KL estimate above that


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
    converged: bool = False  # stopped by ``tol`` before the epoch ceiling
    kl_error: float = 0.0  # standard error of kl_before/kl_after (0: exact)
    state_mass_after: float = 0.0  # model probability on the state's determinants
    first_order_mass_after: float = 0.0  # ... and on the first-order ones
    n_parameters: int = 0
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


def _log_p_of(model: AutoregressiveNQS, teacher: Teacher, index: np.ndarray) -> np.ndarray:
    states = states_from_strings(teacher.alpha[index], teacher.beta[index], model.config.norb).to(model.device)
    return _log_probs(model, states).cpu().numpy()


@dataclass(frozen=True)
class Evaluation:
    """KL(teacher || model) (nats, with its standard error: 0 when exact) and the model's masses."""

    kl: float
    kl_error: float
    mass: float  # on the teacher's support
    state_mass: float  # on the state's determinants
    first_order_mass: float  # on the first-order determinants


def evaluate(model: AutoregressiveNQS, teacher: Teacher, iteration: int = 0, seed: int = 0) -> Evaluation:
    """KL and masses, exact up to ``EXACT_EVAL`` determinants, estimated above (module docstring)."""
    q = teacher.probs
    in_state = teacher.in_state if teacher.in_state is not None else np.ones(len(q), bool)
    if len(q) <= EXACT_EVAL:
        log_p = _log_p_of(model, teacher, np.arange(len(q)))
        kl, error, heavy = float(np.sum(q * (np.log(q) - log_p))), 0.0, np.arange(len(q))
    else:
        draws = numpy_stream(seed, "nqs-eval", iteration).choice(len(q), size=EVAL_DRAWS, p=q)
        terms = np.log(q[draws]) - _log_p_of(model, teacher, draws)
        kl, error = float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(len(terms)))
        heavy = np.sort(np.argsort(-q, kind="stable")[:EXACT_EVAL])
        log_p = _log_p_of(model, teacher, heavy)
    p = np.exp(log_p)
    return Evaluation(kl, error, float(p.sum()), float(p[in_state[heavy]].sum()), float(p[~in_state[heavy]].sum()))


def kl_divergence(model: AutoregressiveNQS, teacher: Teacher) -> tuple[float, float]:
    """KL(teacher || model) in nats and the model's total probability on the teacher's support."""
    found = evaluate(model, teacher)
    return found.kl, found.mass


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
    states: torch.Tensor | None,
    q: torch.Tensor,
    teacher: Teacher,
    generator: np.random.Generator,
    batch_size: int | None,
    smoothing: float,
) -> tuple[float, float]:
    """One Adam step over the whole teacher (``batch_size`` None, ``states`` given) or a drawn mini-batch.

    Returns the objective and the cross-entropy of the teacher under the model before the step.
    """
    model = state.model
    state.optimizer.zero_grad(set_to_none=True)
    if batch_size is None:
        assert states is not None
        batches = [(states[i : i + CHUNK], q[i : i + CHUNK]) for i in range(0, len(states), CHUNK)]
    else:
        picks = generator.choice(len(teacher), size=batch_size, p=teacher.probs)
        picked = states_from_strings(teacher.alpha[picks], teacher.beta[picks], model.config.norb).to(model.device)
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
    tol: float = 0.0,
) -> TrainReport:
    """Run up to ``epochs`` Adam steps on ``state`` (in place) towards ``teacher``; return the report.

    With ``tol`` > 0 stop early once converged (module docstring). ``state.iteration``/
    ``epochs_done`` and the training stream are updated, so that (with ``tol`` 0) saving
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
    q = torch.from_numpy(teacher.probs).to(model.device)
    full_batch = batch_size is None or batch_size >= len(teacher)
    states = None
    if full_batch and epochs > 0:
        states = states_from_strings(teacher.alpha, teacher.beta, model.config.norb).to(model.device)
    before = evaluate(model, teacher, iteration, state.seed)
    losses: list[float] = []
    kls: list[float] = []
    converged = False
    for _ in range(epochs):
        total, cross_entropy = _epoch(
            state, states, q, teacher, generator, None if full_batch else batch_size, smoothing
        )
        losses.append(total)
        if full_batch:
            kls.append(cross_entropy - teacher.entropy)
        if tol > 0 and len(losses) >= 2 * WINDOW and len(losses) % WINDOW == 0:
            last, previous = np.mean(losses[-WINDOW:]), np.mean(losses[-2 * WINDOW : -WINDOW])
            if previous - last < tol * abs(previous):
                converged = True
                break
    # Untouched (no epochs: the controls), the model evaluates exactly as before: the same
    # named stream draws the same determinants; a second pass over the teacher would only cost.
    after = evaluate(model, teacher, iteration, state.seed) if losses else before
    state.epochs_done = (state.epochs_done if continuing else 0) + len(losses)
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
        kl_before=before.kl,
        kl_after=after.kl,
        teacher_mass_before=before.mass,
        teacher_mass_after=after.mass,
        teacher=teacher.summary(),
        wall_s=time.perf_counter() - started,
        converged=converged,
        kl_error=after.kl_error,
        state_mass_after=after.state_mass,
        first_order_mass_after=after.first_order_mass,
        n_parameters=sum(p.numel() for p in model.parameters()),
        extra={"epochs_run": len(losses)},
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
