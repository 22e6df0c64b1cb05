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

To convergence, at a bounded cost: ``epochs`` is a ceiling. The model arrives warm-started
(weights and Adam's moments from the previous iteration's checkpoint), so when the target
barely moved there is little to learn, and training must notice that in a few epochs.
With ``tol`` > 0, full-batch training (small teachers, exact objective) stops once the mean
objective of the last ``WINDOW`` epochs is less than ``tol`` (relative) below that of the
``WINDOW`` before. Mini-batch training, whose per-epoch objective is too noisy for that,
measures the KL every ``check_every`` epochs on the stage's fixed evaluation set and stops
once a check lowered it by less than ``tol`` (relative). The report says ``converged``, how
many epochs ran and the KL of each check (``kl_checks``).

The whole teacher can hold millions of determinants (every |c|^2 above
``teacher_min_weight`` of a 2.25 M product space): mini-batches convert only the drawn
determinants to model inputs, and the evaluations are bounded by ``eval_determinants``
(``nqs.eval_determinants``): above it the KL is estimated from that many draws of the
teacher (stream ``("nqs-eval", iteration)``, standard error reported; the same draws before,
at each check and after) and the masses are summed over that many heaviest determinants
(lower bounds). At 52 qubits (600,000 teacher determinants) the exact-ish evaluation of
131,072 + 16,384 determinants before and after training took three quarters of the step.

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


@dataclass(frozen=True)
class EvalSet:
    """Which teacher determinants an evaluation reads: all of them (``exact``), or the KL's
    draws and the heaviest ones the masses are summed over.

    Fixed for a training stage (drawn from ``("nqs-eval", iteration)``), so that the KL before,
    at each convergence check and after are measured on the same determinants: their
    differences are precise even where each value carries a standard error.
    """

    draws: np.ndarray  # teacher indices of the KL (all of them when exact)
    heavy: np.ndarray  # teacher indices the masses are summed over (sorted)
    exact: bool


def eval_set(teacher: Teacher, iteration: int, seed: int, size: int | None) -> EvalSet:
    """All determinants up to ``size`` (None: no bound), else ``size`` draws and the ``size`` heaviest."""
    q = teacher.probs
    if size is None or len(q) <= size:
        everything = np.arange(len(q))
        return EvalSet(everything, everything, True)
    draws = numpy_stream(seed, "nqs-eval", iteration).choice(len(q), size=size, p=q)
    return EvalSet(draws, np.sort(np.argsort(-q, kind="stable")[:size]), False)


def kl_on(model: AutoregressiveNQS, teacher: Teacher, chosen: EvalSet) -> tuple[float, float, np.ndarray]:
    """KL(teacher || model) on ``chosen`` with its standard error, and log p of the draws."""
    q = teacher.probs[chosen.draws]
    log_p = _log_p_of(model, teacher, chosen.draws)
    if chosen.exact:
        return float(np.sum(q * (np.log(q) - log_p))), 0.0, log_p
    terms = np.log(q) - log_p
    return float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(len(terms))), log_p


def evaluate(
    model: AutoregressiveNQS,
    teacher: Teacher,
    iteration: int = 0,
    seed: int = 0,
    *,
    size: int | None = None,
    chosen: EvalSet | None = None,
) -> Evaluation:
    """KL and masses on ``chosen`` (default: :func:`eval_set` of ``size``; None evaluates exactly).

    Bounded: above ``size`` determinants the cost is ``2 size`` log-probabilities whatever
    the teacher's size (the KL estimated, the masses lower bounds over the heaviest).
    """
    chosen = chosen if chosen is not None else eval_set(teacher, iteration, seed, size)
    in_state = teacher.in_state if teacher.in_state is not None else np.ones(len(teacher), bool)
    kl, error, log_p = kl_on(model, teacher, chosen)
    if not chosen.exact:
        log_p = _log_p_of(model, teacher, chosen.heavy)
    p = np.exp(log_p)
    heavy = in_state[chosen.heavy]
    return Evaluation(kl, error, float(p.sum()), float(p[heavy].sum()), float(p[~heavy].sum()))


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
            "converged": report.converged,
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


@dataclass
class _Stage:
    """What the epochs of one training call leave: the curves and whether ``tol`` stopped them."""

    losses: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    checks: list[float] = field(default_factory=list)  # KL on the evaluation set every check_every epochs
    converged: bool = False


def _window_settled(losses: list[float], tol: float) -> bool:
    """The mean objective of the last ``WINDOW`` epochs is less than ``tol`` below the ``WINDOW`` before."""
    if len(losses) < 2 * WINDOW or len(losses) % WINDOW:
        return False
    last, previous = np.mean(losses[-WINDOW:]), np.mean(losses[-2 * WINDOW : -WINDOW])
    return bool(previous - last < tol * abs(previous))


def _epochs(state: NQSState, teacher: Teacher, epochs: int, options: dict[str, Any], before: float) -> _Stage:
    """Up to ``epochs`` Adam steps; stop once converged (module docstring, "To convergence").

    Mini-batches with ``check_every``: every ``check_every`` epochs the KL on the stage's
    evaluation set (the same determinants as ``before``) is measured; a check that lowered it
    by less than ``tol`` (relative) ends the stage: a target that did not move since the last
    iteration (warm start) stops after one check.
    """
    model, tol, every = state.model, options["tol"], options["check_every"]
    generator = options["generator"]
    batch = None if options["full_batch"] else options["batch_size"]
    q = torch.from_numpy(teacher.probs).to(model.device)
    states = None
    if batch is None and epochs > 0:
        states = states_from_strings(teacher.alpha, teacher.beta, model.config.norb).to(model.device)
    stage, last = _Stage(), before
    for _ in range(epochs):
        total, cross_entropy = _epoch(state, states, q, teacher, generator, batch, options["smoothing"])
        stage.losses.append(total)
        if batch is None:
            stage.kl.append(cross_entropy - teacher.entropy)
        if tol > 0 and batch is not None and every > 0:
            if len(stage.losses) % every == 0:
                stage.checks.append(kl_on(model, teacher, options["chosen"])[0])
                stage.converged = last - stage.checks[-1] < tol * abs(last)
                last = stage.checks[-1]
        elif tol > 0:
            stage.converged = _window_settled(stage.losses, tol)
        if stage.converged:
            break
    return stage


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
    eval_determinants: int | None = None,
    check_every: int = 0,
) -> TrainReport:
    """Run up to ``epochs`` Adam steps on ``state`` (in place) towards ``teacher``; return the report.

    With ``tol`` > 0 stop early once converged (module docstring). ``eval_determinants``
    bounds the evaluations (:func:`evaluate`; None: exact). ``state.iteration``/
    ``epochs_done`` and the training stream are updated, so that (with ``tol`` 0) saving
    the state after ``train(k, 4)`` and calling ``train(k, 6)`` on the loaded copy gives the
    same weights as ``train(k, 10)``.
    """
    if epochs < 0 or not 0.0 <= smoothing < 1.0:
        raise ValueError("epochs must be non-negative and smoothing in [0, 1)")
    started = time.perf_counter()
    if learning_rate is not None:
        state.set_learning_rate(learning_rate)
    generator = state.train_generator(iteration)
    continuing = state.iteration == iteration
    full_batch = batch_size is None or batch_size >= len(teacher)
    chosen = eval_set(teacher, iteration, state.seed, eval_determinants)
    before = evaluate(state.model, teacher, chosen=chosen)
    options = {"tol": tol, "check_every": check_every, "generator": generator, "full_batch": full_batch,
               "batch_size": batch_size, "smoothing": smoothing, "chosen": chosen}  # fmt: skip
    stage = _epochs(state, teacher, epochs, options, before.kl)
    # Untouched (no epochs: the controls), the model evaluates exactly as before: the same
    # determinants; a second pass over them would only cost.
    after = evaluate(state.model, teacher, chosen=chosen) if stage.losses else before
    state.epochs_done = (state.epochs_done if continuing else 0) + len(stage.losses)
    state.iteration = iteration
    state.train_rng = {"iteration": iteration, "state": generator.bit_generator.state}
    report = _report(state, teacher, iteration, epochs, stage, (before, after), options)
    report.wall_s = time.perf_counter() - started
    _record(state, report, teacher)
    return report


def _report(
    state: NQSState,
    teacher: Teacher,
    iteration: int,
    epochs: int,
    stage: _Stage,
    evaluations: tuple[Evaluation, Evaluation],
    options: dict[str, Any],
) -> TrainReport:
    """The stage's report (``wall_s`` is the caller's to set)."""
    before, after = evaluations
    return TrainReport(
        iteration=iteration,
        epochs=epochs,
        epochs_done=state.epochs_done,
        learning_rate=state.learning_rate,
        smoothing=options["smoothing"],
        batch_size=None if options["full_batch"] else options["batch_size"],
        losses=stage.losses,
        kl=stage.kl,
        kl_before=before.kl,
        kl_after=after.kl,
        teacher_mass_before=before.mass,
        teacher_mass_after=after.mass,
        teacher=teacher.summary(),
        wall_s=0.0,
        converged=stage.converged,
        kl_error=after.kl_error,
        state_mass_after=after.state_mass,
        first_order_mass_after=after.first_order_mass,
        n_parameters=sum(p.numel() for p in state.model.parameters()),
        extra={"epochs_run": len(stage.losses), "kl_checks": stage.checks},
    )


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
