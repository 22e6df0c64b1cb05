"""Unique-sample batched sampling: cost grows with the unique determinants, not the sample count.

Drawing ``n_samples`` determinants one by one repeats the same popular prefixes over and over.
Instead the sampler walks the orbital tree once: it starts with one empty prefix carrying all
``n_samples``; at orbital ``i`` every prefix's count is split among the four states in
proportion to the model's (masked, tempered) conditional probabilities by a multinomial
draw, and only children with a non-zero count survive. At the end each surviving leaf is a
unique determinant with its count, and the counts are exactly a multinomial sample of
``n_samples`` draws from the model's distribution.

Each step feeds one token per prefix through the transformer and reuses the keys and values
of the prefix from a cache (:meth:`AutoregressiveNQS.step`). Every prefix has at least one
child (its count is split, not lost), so the frontier only grows: the first child of each
prefix keeps its parent's cache row in place and only the extra children (branchings) are
copied to rows appended at the end of an over-allocated buffer. Late in the tree, where most
prefixes carry a single sample, a step therefore copies almost nothing.

Memory is bounded by ``max_batch``, the most prefixes (cache rows) one frontier may hold.
A prefix carrying ``c`` samples with ``m`` possible completions (``C(k, a) C(k, b)`` for
``k`` orbitals and ``a``, ``b`` electrons left) can never have more than ``min(c, m)``
descendants at any depth. A frontier whose total of these "potentials" fits ``max_batch``
is run to the end as one batch, in a cache buffer allocated once at that size. A frontier
that does not fit is split before its next step into groups that do (rows whose own
potential exceeds ``max_batch`` are grouped by their next-step children, at most
``min(c, 4)`` each), and the groups are finished one after another (depth first). Only the
top of the tree, where the few prefixes carry many samples, is ever split, so batches stay
large where the work is. The result depends on ``max_batch`` (it changes the order of
random draws), so it is a fixed default rather than something derived from the device.

Randomness: the counts are split on the host with a NumPy generator, normally the named
stream ``("nqs-sample", iteration)`` (:func:`sample_for_iteration`). Only the model's
logits come from the device, so CPU and CUDA runs draw from the same stream and differ only
where float rounding of the logits tips a binomial draw.

The temperature divides the logits before each conditional softmax: ``T > 1`` flattens the
distribution, ``T < 1`` sharpens it. ``model.log_prob(alpha, beta, temperature=T)`` is
the exact log-probability with which this sampler draws a determinant at temperature ``T``.

Python API::

    result = sample_unique(model, n_samples, numpy_generator, temperature=1.0, max_batch=16384)
    alpha, beta, counts = result          # unpacks like a tuple
    result.log_prob                       # model log p(x) at T = 1, float64
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
import torch

from hinqs.io.files import Samples
from hinqs.nqs.model import (
    BOS,
    STATE_ALPHA,
    STATE_BETA,
    AutoregressiveNQS,
    KVCache,
    NQSConfig,
    valid_states,
)
from hinqs.seeding import numpy_stream

_ALPHA = np.array(STATE_ALPHA, dtype=np.uint64)
_BETA = np.array(STATE_BETA, dtype=np.uint64)


@dataclass
class _Frontier:
    """Prefixes of the same length, with everything needed to extend them by one orbital.

    ``cache`` buffers may have more rows than the frontier (spare capacity for branchings);
    rows ``[0, len)`` belong to the frontier.
    """

    position: int
    tokens: np.ndarray  # int64 input token of `position` (state of position-1, or BOS)
    alpha: np.ndarray
    beta: np.ndarray
    used_alpha: np.ndarray
    used_beta: np.ndarray
    counts: np.ndarray
    log_prob: np.ndarray
    log_prob_sampled: np.ndarray
    cache: KVCache | None

    def __len__(self) -> int:
        return len(self.counts)

    def take(self, rows: np.ndarray) -> _Frontier:
        """A new frontier of ``rows`` with compact copies of their cache rows (the parent can be freed)."""
        cache = None
        if self.cache is not None:
            index = torch.from_numpy(rows).to(self.cache[0][0].device)
            cache = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.cache]
        arrays = (
            self.tokens,
            self.alpha,
            self.beta,
            self.used_alpha,
            self.used_beta,
            self.counts,
            self.log_prob,
            self.log_prob_sampled,
        )
        return _Frontier(self.position, *(a[rows] for a in arrays), cache)  # type: ignore[arg-type]


def _grow_cache(cache: KVCache, rows: int, extra_parent: np.ndarray, capacity: int) -> KVCache:
    """Append copies of rows ``extra_parent`` after the first ``rows`` rows, reallocating if full.

    A full buffer is replaced by one of ``capacity`` rows (at least what is needed now).
    On the CPU, rows a buffer reserves but never writes are never touched, so reserving the
    most a frontier can reach costs address space rather than resident memory.
    """
    needed = rows + len(extra_parent)
    index = torch.from_numpy(extra_parent).to(cache[0][0].device)
    grown: KVCache = []
    for keys, values in cache:
        if needed > keys.shape[0]:
            size = max(needed, capacity)
            new_keys = keys.new_empty((size, *keys.shape[1:]))
            new_values = values.new_empty((size, *values.shape[1:]))
            new_keys[:rows] = keys[:rows]
            new_values[:rows] = values[:rows]
            keys, values = new_keys, new_values
        keys[rows:needed] = keys.index_select(0, index)
        values[rows:needed] = values.index_select(0, index)
        grown.append((keys, values))
    return grown


def _completions_table(norb: int) -> np.ndarray:
    """``table[k, n] = C(k, n)`` as float64 (exact up to 2**53; only compared with counts)."""
    return np.array([[float(comb(k, n)) for n in range(norb + 1)] for k in range(norb + 1)])


def _potentials(front: _Frontier, config: NQSConfig, table: np.ndarray) -> np.ndarray:
    """Most descendants each prefix can have: min(samples it carries, completions it has)."""
    left = config.norb - front.position
    completions = table[left, config.n_alpha - front.used_alpha] * table[left, config.n_beta - front.used_beta]
    return np.minimum(front.counts.astype(np.float64), completions)


def _groups(weights: np.ndarray, rows: np.ndarray, max_batch: int) -> list[np.ndarray]:
    """Consecutive runs of ``rows`` whose ``weights`` add up to at most ``max_batch`` (at least one row each)."""
    reach = np.cumsum(weights[rows])
    groups = []
    start = 0
    while start < len(rows):
        before = reach[start - 1] if start else 0.0
        stop = max(int(np.searchsorted(reach, before + max_batch, side="right")), start + 1)
        groups.append(rows[start:stop])
        start = stop
    return groups


def _split(front: _Frontier, potentials: np.ndarray, max_batch: int) -> list[np.ndarray]:
    """Row groups of a frontier too big to finish in one batch (see the module docstring)."""
    heavy = potentials > max_batch
    light_groups = _groups(potentials, np.flatnonzero(~heavy), max_batch)
    next_step = np.minimum(front.counts, 4).astype(np.float64)
    return _groups(next_step, np.flatnonzero(heavy), max_batch) + light_groups


def masked_log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float64 log-softmax over the allowed entries of each row; -inf elsewhere."""
    x = np.where(mask, logits, -np.inf)
    top = x.max(axis=-1, keepdims=True)
    shifted = x - top
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def split_counts(counts: np.ndarray, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multinomial split of ``counts[b]`` over ``probs[b, :]`` as a chain of binomials, ``(B, 4)``.

    Each state takes ``Binomial(rest, p_j / (p_j + ... + p_last))``. The suffix sums are
    exact zeros after the last allowed state and equal ``p_j`` at it, so the ratio is exactly
    1 there: a forbidden state can never receive a count, whatever the rounding.
    """
    suffix = probs[:, ::-1].cumsum(axis=1)[:, ::-1]
    rest = counts.astype(np.int64, copy=True)
    out = np.zeros(probs.shape, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(suffix > 0, probs / suffix, 0.0)
    ratio = np.clip(ratio, 0.0, 1.0)
    for j in range(probs.shape[1] - 1):
        drawn = rng.binomial(rest, ratio[:, j])
        out[:, j] = drawn
        rest -= drawn
    out[:, -1] = rest
    return out


def _expand(
    model: AutoregressiveNQS, front: _Frontier, rng: np.random.Generator, temperature: float, capacity: int
) -> _Frontier:
    """Extend every prefix by one orbital, keeping the children that received samples.

    ``capacity``: rows to reserve if the cache buffer must grow (the frontier's bound).

    New row order: the first child of every prefix (in the parent's row, whose cache it
    shares), then the remaining children in (parent, state) order in appended rows.
    """
    cfg = model.config
    pos = front.position
    rows = len(front)
    tokens = torch.from_numpy(front.tokens).to(model.device)
    view = None if front.cache is None else [(k[:rows], v[:rows]) for k, v in front.cache]
    logits, view = model.step(tokens, pos, view)
    cache = view if front.cache is None else front.cache
    logits64 = logits.double().cpu().numpy()
    mask = valid_states(cfg.n_alpha - front.used_alpha, cfg.n_beta - front.used_beta, cfg.norb - pos)
    log_p = masked_log_softmax(logits64, mask)
    log_p_t = log_p if temperature == 1.0 else masked_log_softmax(logits64 / temperature, mask)
    children = split_counts(front.counts, np.exp(log_p_t), rng)
    parent, state = np.nonzero(children)
    first = np.ones(len(parent), dtype=bool)
    first[1:] = parent[1:] != parent[:-1]
    order = np.concatenate([np.flatnonzero(first), np.flatnonzero(~first)])
    parent, state = parent[order], state[order]
    if len(parent) > rows:
        cache = _grow_cache(cache, rows, parent[rows:], capacity)
    shift = np.uint64(pos)
    return _Frontier(
        pos + 1,
        state.astype(np.int64),
        front.alpha[parent] | (_ALPHA[state] << shift),
        front.beta[parent] | (_BETA[state] << shift),
        front.used_alpha[parent] + _ALPHA[state].astype(np.int64),
        front.used_beta[parent] + _BETA[state].astype(np.int64),
        children[parent, state],
        front.log_prob[parent] + log_p[parent, state],
        front.log_prob_sampled[parent] + log_p_t[parent, state],
        cache,
    )


@torch.inference_mode()
def sample_unique(
    model: AutoregressiveNQS,
    n_samples: int,
    generator: np.random.Generator,
    temperature: float,
    max_batch: int,
) -> Samples:
    """Draw ``n_samples`` determinants; return the unique ones with their counts.

    ``generator`` is consumed in a fixed order (depending on ``max_batch``), so the same
    generator state gives the same samples. Cost: one cached transformer step per unique
    prefix and orbital.
    """
    if n_samples < 0:
        raise ValueError("n_samples must be non-negative")
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    if max_batch < 4:
        raise ValueError("max_batch must be at least 4 (a prefix can have 4 children)")
    norb = model.config.norb
    zeros_i = np.zeros(1, dtype=np.int64)
    zeros_u = np.zeros(1, dtype=np.uint64)
    start = _Frontier(
        0,
        np.full(1, BOS, dtype=np.int64),
        zeros_u,
        zeros_u,
        zeros_i,
        zeros_i,
        np.array([n_samples], dtype=np.int64),
        np.zeros(1),
        np.zeros(1),
        None,
    )
    table = _completions_table(norb)
    # (frontier, grouped): a group made by _split is stepped as it is, even a group of
    # heavy prefixes whose potential exceeds max_batch (its next step fits by construction).
    stack = [(start, False)] if n_samples > 0 else []
    done: list[_Frontier] = []
    while stack:
        front, grouped = stack.pop()
        if front.position == norb:
            front.cache = None  # finished: free its keys and values now
            done.append(front)
            continue
        potential = _potentials(front, model.config, table)
        total = float(potential.sum())
        if total > max_batch and len(front) > 1 and not grouped:
            groups = _split(front, potential, max_batch)
            stack.extend((front.take(rows), True) for rows in reversed(groups))
            continue
        # A frontier that fits reserves its bound once; one that does not (heavy prefixes)
        # is split again after this step, so it reserves only what it needs.
        capacity = int(total) if total <= max_batch else 0
        stack.append((_expand(model, front, generator, temperature, capacity), False))
    return _collect(done, temperature, n_samples)


def _collect(done: list[_Frontier], temperature: float, n_samples: int) -> Samples:
    def cat(field: str, dtype: type) -> np.ndarray:
        parts = [getattr(front, field) for front in done]
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

    alpha, beta = cat("alpha", np.uint64), cat("beta", np.uint64)
    order = np.lexsort((beta, alpha))
    return Samples(
        alpha=alpha[order],
        beta=beta[order],
        counts=cat("counts", np.int64)[order],
        log_prob=cat("log_prob", np.float64)[order],
        log_prob_sampled=cat("log_prob_sampled", np.float64)[order],
        temperature=float(temperature),
        n_samples=int(n_samples),
    )


def sample_for_iteration(
    model: AutoregressiveNQS,
    n_samples: int,
    seed: int,
    iteration: int,
    temperature: float,
    max_batch: int,
) -> Samples:
    """:func:`sample_unique` with the run's named stream ``("nqs-sample", iteration)``."""
    return sample_unique(model, n_samples, numpy_stream(seed, "nqs-sample", iteration), temperature, max_batch)
