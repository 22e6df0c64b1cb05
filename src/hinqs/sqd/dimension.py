"""The product-space trap: estimate each batch's dimension and memory before solving.

A batch of S sampled determinants spans ``K_alpha x K_beta`` product determinants (closed
shells: ``K^2`` with K the union of both spins' strings), so a few thousand samples can mean
10^7 determinants and a worker that dies of memory half-way through a step. This module:

- estimates the memory one solve needs, ``baseline + bytes_per_determinant x dimension``,
  from fits measured with ``benchmarks/bench_memory.py`` (N2/cc-pVDZ, 26 orbitals);
- derives ``max_dimension`` when the config leaves it ``null`` from the config alone: the
  share of ``sqd.memory_mb`` each worker gets when that is set, else :data:`AUTO_MAX_DIMENSION`.
  Never from the machine: the same config must diagonalise the same subspaces on a laptop,
  a busy node or a large one;
- caps a batch over that dimension by keeping its heaviest strings (weight = summed sample
  counts of the batch's determinants that hold the string; ties broken by string value, so
  the cap is deterministic);
- finds the memory the step has: ``sqd.memory_mb`` when set, else SLURM's grant
  (``SLURM_MEM_PER_NODE``, or ``SLURM_MEM_PER_CPU`` x the CPUs of the job), else what the
  node has available (psutil), divided among the worker processes; this figure only
  decides whether a batch may run at all:
- refuses, before any solve starts, a batch whose estimate does not fit (one line: what it
  needs, what there is and where that figure came from), unless ``sqd.shrink_to_memory``
  asks to cut it to what fits (:func:`memory_dimension`; result.json records the cut);
- for a batch spread over MPI ranks (``parallel.executor: distributed``), finds what each
  rank has instead (:func:`rank_memory_mb`) and what each rank needs: its rows of the
  batch's vectors and, during a product, the rows its links reach on the other ranks
  (``estimate_mb(..., ranks=P)``), so a batch larger than one node's memory fits P ranks.

One model serves the step's checks, its ``sqd.shrink_to_memory`` cut, the derived cap and the
memory the workflow asks the scheduler for (:mod:`hinqs.loop.workflow_support`).

Nothing here imports PySCF: the checks run in the parent before a worker is started.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from hinqs.errors import InputError
from hinqs.io.files import read_state

# Measured with benchmarks/bench_memory.py and bench_scale.py on N2/cc-pVDZ (26 orbitals,
# (5,5)), one thread, 14 Davidson cycles: a lean worker sits at 102 MB after its imports and
# the integrals and grows by about 250 B per product determinant (+21 MB at 22.5k, +38 MB at
# 90k; 156-181 MB peaks at 94k-160k in the loop runs); solve_fermion starts at 253-261 MB
# (qiskit and JAX imports) and grows by about 200 B per determinant (+25 MB at 22.5k, +38 MB
# at 90k). Davidson keeps up to 13 trial and 13 sigma vectors of dimension N (2 x 13 x 8 B =
# 208 B) plus the diagonal and link tables. The constants below round these up: an estimate
# that errs high caps or refuses a little early, one that errs low lets the OOM killer take
# the worker.
# The direct solver keeps Davidson's 12 trial and 12 sigma vectors like the others, plus the
# kernel's [C, -C] copy and two product-sized work arrays (about 40 B): 300 B still covers it.
BYTES_PER_DETERMINANT = {"solve_fermion": 300, "lean": 300, "direct": 300}
BASELINE_MB = {"solve_fermion": 350, "lean": 150, "direct": 250}
# The PT2 step (hinqs.subspace.pt2) holds the state twice (the file's and a normalised copy),
# its link tables into the connected strings and one row's work arrays per thread: measured
# 647 MB peak RSS for a sampled PT2 of the 52-qubit run's 8.0 M-determinant state on 2 threads
# (commit eded586), about 300 MB of imports and 43 B per state determinant (297-678 MB per PT2
# step of that loop's 0.3-8.0 M-determinant states at 15961b0, before the proposal shared the
# PT2's tables: benchmarks/n2_ccpvdz/README.md); rounded up like the solvers' figures.
PT2_BASELINE_MB = 350
PT2_BYTES_PER_DETERMINANT = 100
# A batch spread over P ranks: each rank holds 1/P of the Davidson's vectors and, during a
# product, the rows its links reach on the other ranks (the halo, at most the other ranks'
# rows: under one whole vector) with a copy of its own rows. So per rank the vectors' bytes
# divide by P and one vector's (8 B per determinant) does not. Measured with
# benchmarks/bench_ranks.py at 4 M determinants (docs/performance.md): 663 and 680 MB per rank
# at 2 ranks against 1,137 MB at one; the model says 882 and 1,450.
HALO_BYTES_PER_DETERMINANT = 8
# What the parent process of a step holds besides the workers (pool, merged state).
PARENT_MB = 300
# Fraction of the detected memory a step plans to use: the rest is headroom for the page
# cache of the integrals and for the estimate's error.
USABLE_FRACTION = 0.8
# The cap a config with ``sqd.max_dimension: null`` and no ``sqd.memory_mb`` gets: a fixed
# figure, so that nothing derived depends on the machine. About 2.6 GB per worker with the
# default direct solver by the estimates above, and at or above every subspace the
# size-derived defaults build (at most hinqs.loop.defaults.MAX_AUTO_STRINGS^2 = 7.84 M
# determinants), so it only cuts batches that an explicit sqd.samples_per_batch made larger.
AUTO_MAX_DIMENSION = 8_000_000


@dataclass(frozen=True)
class MemoryBudget:
    """Memory the step may use and where that figure came from."""

    total_mb: float
    per_worker_mb: float
    source: str
    workers: int
    holder: str = "worker"  # what holds one share: a pool's worker, or a rank of a batch spread over ranks

    @property
    def ranks(self) -> int:
        """Processes one batch is spread over: every rank (``holder`` rank), else one worker."""
        return self.workers if self.holder == "rank" else 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, recorded in result.json."""
        return {
            "total_mb": round(self.total_mb, 1),
            "per_worker_mb": round(self.per_worker_mb, 1),
            "source": self.source,
            "workers": self.workers,
            **({} if self.holder == "worker" else {"holder": self.holder}),
        }


def _bytes_per_determinant(solver: str, ranks: int) -> float:
    """Bytes one process holds per determinant of a batch spread over ``ranks`` ranks (1: a worker)."""
    if ranks <= 1:
        return float(BYTES_PER_DETERMINANT[solver])
    return BYTES_PER_DETERMINANT[solver] / ranks + HALO_BYTES_PER_DETERMINANT


def estimate_mb(dimension: int, solver: str, ranks: int = 1) -> float:
    """Peak resident memory (MB) of one worker solving a subspace of ``dimension`` determinants,
    or of one of the ``ranks`` MPI ranks a batch is spread over."""
    return BASELINE_MB[solver] + _bytes_per_determinant(solver, ranks) * dimension / 1e6


def dimension_for_mb(memory_mb: float, solver: str, ranks: int = 1) -> int:
    """Largest dimension whose estimate fits in ``memory_mb`` per process (0 when not even the
    baseline does)."""
    spare = memory_mb - BASELINE_MB[solver]
    return max(0, int(spare * 1e6 / _bytes_per_determinant(solver, ranks)))


def batch_ranks(executor: str | None, workers: int) -> int:
    """Processes one batch is spread over: every rank for ``distributed``, else one worker."""
    return max(1, int(workers)) if executor == "distributed" else 1


def slurm_memory_mb(env: dict[str, str] | None = None) -> tuple[float, str] | None:
    """Memory SLURM granted the job, in MB, or None outside a SLURM job with a memory request.

    A value that is not a number is one line (:class:`InputError`), not a traceback.
    """
    env = os.environ if env is None else env
    try:
        if env.get("SLURM_MEM_PER_NODE"):
            return float(env["SLURM_MEM_PER_NODE"]), "SLURM_MEM_PER_NODE"
        if env.get("SLURM_MEM_PER_CPU"):
            cpus = env.get("SLURM_CPUS_PER_TASK") or env.get("SLURM_CPUS_ON_NODE") or "1"
            ncpu = int(cpus.split("(")[0].split(",")[0])
            return float(env["SLURM_MEM_PER_CPU"]) * ncpu, f"SLURM_MEM_PER_CPU x {ncpu} CPUs"
    except ValueError as exc:
        raise InputError(f"cannot read SLURM's memory grant from the environment: {exc}") from None
    return None


def memory_budget(workers: int, memory_mb: float | None = None, env: dict[str, str] | None = None) -> MemoryBudget:
    """The step's memory and each worker's share (the parent's share taken off first)."""
    if memory_mb is not None:
        total, source = float(memory_mb), "sqd.memory_mb"
    else:
        granted = slurm_memory_mb(env)
        if granted is not None:
            total, source = granted
        else:
            import psutil

            total, source = psutil.virtual_memory().available / 2**20, "available memory (psutil)"
        total *= USABLE_FRACTION
        source += f" x {USABLE_FRACTION:g}"
    per_worker = max(0.0, (total - PARENT_MB) / max(1, workers))
    return MemoryBudget(total, per_worker, source, max(1, workers))


def rank_memory_mb(
    memory_mb: float | None, ranks: int, ranks_on_node: int, leader: bool, env: dict[str, str] | None = None
) -> tuple[float, str]:
    """Memory (MB) one MPI rank of a batch spread over ``ranks`` ranks may use, and where that came from.

    What each rank needs for a batch is :func:`estimate_mb` with the ranks. ``sqd.memory_mb``
    is the step's, all ranks together; SLURM's ``SLURM_MEM_PER_NODE`` and the node's
    available memory are the node's, shared by the ``ranks_on_node`` ranks there;
    ``SLURM_MEM_PER_CPU`` is per CPU, times the CPUs of one task. The leader (rank 0) also
    holds the step's own data (:data:`PARENT_MB`).
    """
    env = os.environ if env is None else env
    parent = PARENT_MB if leader else 0.0
    if memory_mb is not None:
        return float(memory_mb) / max(1, ranks) - parent, f"sqd.memory_mb / {ranks} ranks"
    if not env.get("SLURM_MEM_PER_NODE") and env.get("SLURM_MEM_PER_CPU"):
        try:
            cpus = int(env.get("SLURM_CPUS_PER_TASK") or "1")
            per_task = float(env["SLURM_MEM_PER_CPU"]) * cpus
        except ValueError as exc:
            raise InputError(f"cannot read SLURM's memory grant from the environment: {exc}") from None
        return per_task * USABLE_FRACTION - parent, f"SLURM_MEM_PER_CPU x {cpus} CPUs x {USABLE_FRACTION:g}"
    granted = slurm_memory_mb(env)
    if granted is None:
        import psutil

        granted = psutil.virtual_memory().available / 2**20, "available memory (psutil)"
    node, source = granted
    share = node * USABLE_FRACTION / max(1, ranks_on_node) - parent
    return share, f"{source} x {USABLE_FRACTION:g} / {ranks_on_node} ranks on the node"


def round_down(dimension: int) -> int:
    """``dimension`` rounded down to two significant digits (at least 1).

    A derived cap is rounded so that a small change in the memory figure it comes from
    rarely changes which batches are capped.
    """
    if dimension < 100:
        return max(dimension, 1)
    scale = 10 ** (int(math.log10(dimension)) - 1)
    return dimension // scale * scale


def resolve_max_dimension(
    max_dimension: int | None, solver: str, memory_mb: float | None, workers: int, executor: str | None = None
) -> int | None:
    """The cap to apply: the configured one, the derived one (``None``), or no cap (0).

    Derived from the config only (see the module docstring): what each worker's share of
    ``sqd.memory_mb`` holds (each rank's share of a batch spread over all ``workers`` ranks,
    for the ``distributed`` ``executor``) when it is set, else :data:`AUTO_MAX_DIMENSION`.
    """
    if max_dimension == 0:
        return None
    if max_dimension is not None:
        return int(max_dimension)
    if memory_mb is None:
        return AUTO_MAX_DIMENSION
    ranks = batch_ranks(executor, workers)
    return round_down(dimension_for_mb(memory_budget(workers, memory_mb).per_worker_mb, solver, ranks))


def memory_dimension(budget: MemoryBudget, solver: str) -> int:
    """The largest (rounded) dimension a worker's (or each rank's) share of ``budget`` holds; 0 when
    not even the solver's baseline fits. What ``sqd.shrink_to_memory`` cuts a batch to."""
    fits = dimension_for_mb(budget.per_worker_mb, solver, budget.ranks)
    return round_down(fits) if fits > 0 else 0


def string_weights(strings: np.ndarray, holders: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weight of each string: summed weights of the determinants whose alpha or beta half it is."""
    total = np.zeros(len(strings), dtype=np.float64)
    for half in holders:
        pos = np.searchsorted(strings, half)
        np.add.at(total, pos, weights)
    return total


def teacher_marginals(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(strs_a, w_a, strs_b, w_b)``: each string's |c|^2 summed over the other spin in a state file."""
    state = read_state(path, sort=True)
    prob = state.amplitudes**2
    prob = prob / prob.sum()
    return state.strs_a, prob.sum(axis=1), state.strs_b, prob.sum(axis=0)


def teacher_lookup(strings: np.ndarray, known: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Teacher weight of each string: 0 for strings the teacher does not hold (``known`` sorted)."""
    out = np.zeros(len(strings))
    if len(known) == 0:
        return out
    pos = np.minimum(np.searchsorted(known, strings), len(known) - 1)
    hit = known[pos] == strings
    out[hit] = weight[pos[hit]]
    return out


def heaviest(strings: np.ndarray, weight: np.ndarray, keep: int) -> np.ndarray:
    """The ``keep`` strings of largest weight (ties: smaller string first), sorted by value."""
    order = np.lexsort((strings, -weight))
    return np.sort(strings[order[:keep]])


def cap_shape(k_alpha: int, k_beta: int, max_dimension: int, shared: bool) -> tuple[int, int]:
    """Largest ``(k_a, k_b)`` not above the current shape with ``k_a x k_b <= max_dimension``.

    Shared string sets (closed shells) stay square; otherwise the larger side is trimmed
    first, so the product space stays as balanced as the batch allows.
    """
    if k_alpha * k_beta <= max_dimension:
        return k_alpha, k_beta
    if shared:
        k = max(1, math.isqrt(max_dimension))
        return min(k, k_alpha), min(k, k_beta)
    small, _large = sorted((k_alpha, k_beta))
    side = max(1, math.isqrt(max_dimension))
    if small <= side:
        new_small, new_large = small, max(1, max_dimension // small)
    else:
        new_small = new_large = side
    return (new_small, new_large) if k_alpha <= k_beta else (new_large, new_small)


def check_fits(
    batches: list[Any], solver: str, budget: MemoryBudget, max_dimension: int | None, shrink_to_memory: bool
) -> None:
    """One-line :class:`InputError` naming the first batch whose estimate exceeds a worker's share.

    The line says what the batch needs, what a worker has and where that figure came from,
    so that the user can tell a small node from a too-large batch without a traceback.
    """
    advice = ", or set sqd.shrink_to_memory: true to cut the batch to what fits"
    for batch in batches:
        need = estimate_mb(batch.n_determinants, solver, budget.ranks)
        if need > budget.per_worker_mb:
            ka, kb = batch.shape
            cap = "no cap (sqd.max_dimension: 0)" if max_dimension is None else f"sqd.max_dimension = {max_dimension:,}"
            raise InputError(
                f"batch {batch.index}: {ka} x {kb} = {batch.n_determinants:,} determinants need about "
                f"{need:,.0f} MB{f' per {budget.holder}' if budget.holder != 'worker' else ''} with {solver}, "
                f"but a {budget.holder} has {budget.per_worker_mb:,.0f} MB "
                f"(from {budget.source}, {budget.workers} {budget.holder}(s); {cap}); lower sqd.samples_per_batch or "
                f"sqd.max_dimension or give the step more memory{'' if shrink_to_memory else advice}"
            )
