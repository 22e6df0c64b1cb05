"""One diagonalisation step: subspace -> batches -> parallel solves -> merged result on disk.

Python API (what :func:`hinqs.steps.diagonalize.diagonalize` calls)::

    from hinqs.sqd import run_diagonalization

    settings = RunSettings.from_config(config).for_system(norb, nelec)
    result = run_diagonalization(
        "results/n2/hamiltonian",        # Hamiltonian folder (hcore.npy, eri.npy, meta.json)
        alpha, beta, counts,             # the subspace: uint64 CI strings; counts may be None
        "results/n2/iter_003/sqd",       # output folder
        settings.sqd_step(iteration=3),
    )
    result.energy, result.best_batch, result.batch_energies
    state = result.load_state()          # a hinqs.io.files.GroundState

Output folder::

    result.json          merged energy, best batch, batch_energies, per-batch records,
                         settings, executor report, timings (written last: the step's
                         commit marker)
    state.npz            the best batch's ci_strs_a, ci_strs_b (uint64), amplitudes
                         (len(a) x len(b)), occ_a, occ_b, plus energy and batch_index
    batches/batch_NNN.json/.npz   each batch as it finished (see hinqs.sqd.store)

Energies are total energies (core energy added) and are written as JSON floats, whose
shortest-repr form round-trips float64 exactly: bit-identical runs give identical files.

The step raises :class:`hinqs.errors.StepFailed` only when every batch failed (the
per-batch files still record why) and :class:`hinqs.errors.InputError` for bad inputs.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.errors import InputError, StepFailed, WriteFailed
from hinqs.io.atomic import describe_os_error
from hinqs.io.determinants import target_spin_square
from hinqs.io.files import StepResult, read_state, step_result, write_result, write_state
from hinqs.io.hamiltonian import active_shape, hamiltonian_id, load_hamiltonian
from hinqs.io.layout import SQDFiles
from hinqs.sqd import merge, store
from hinqs.sqd.batches import Batch, canonical_subspace, cap_batch, form_batches
from hinqs.sqd.device_check import check_step_device
from hinqs.sqd.dimension import (
    MemoryBudget,
    check_fits,
    estimate_mb,
    memory_budget,
    memory_dimension,
    resolve_max_dimension,
    teacher_marginals,
)
from hinqs.sqd.executors import BatchExecutor, ExecutorReport, make_executor
from hinqs.sqd.settings import SQDSettings
from hinqs.sqd.task import BatchOutcome, BatchTask

RESULT_FORMAT = "hinqs-sqd-result/1"

log = logging.getLogger("hinqs.sqd")


def executor_for(settings: SQDSettings) -> BatchExecutor:
    """The executor the settings ask for."""
    par = settings.parallel
    return make_executor(
        par.executor,
        workers=par.workers,
        threads=par.threads_per_worker,
        retries=par.retries,
        timeout=par.batch_timeout,
        kill_grace=par.kill_grace,
    )


def _check_subspace(alpha: np.ndarray, beta: np.ndarray, counts: np.ndarray | None, meta: dict[str, Any]) -> None:
    from hinqs.io.determinants import validate_determinants

    norb, nelec = active_shape(meta)
    if alpha.ndim != 1 or alpha.shape != beta.shape:
        raise InputError("alpha and beta must be 1-d arrays of the same length")
    if len(alpha) == 0:
        raise InputError("the subspace is empty")
    try:
        validate_determinants(alpha, beta, norb, nelec)
    except ValueError as exc:
        raise InputError(f"determinants do not fit the Hamiltonian: {exc}") from None
    if counts is not None and (counts.shape != alpha.shape or not np.all(np.isfinite(counts)) or np.any(counts < 0)):
        raise InputError("counts must hold one finite, non-negative weight per determinant")
    if counts is not None and not np.any(counts > 0):
        raise InputError("counts are all zero")


def plan_batches(
    batches: list[Batch],
    settings: SQDSettings,
    nelec: tuple[int, int],
    teacher: str | os.PathLike[str] | None = None,
    budget: MemoryBudget | None = None,
) -> tuple[list[Batch], dict]:
    """Cap each batch's product space and check its memory, before anything is solved or written.

    ``teacher`` (the previous iteration's ``state.npz``) lets the cap rank strings by the
    state's weights as well as by sample counts (:func:`hinqs.sqd.batches.cap_batch`).

    The cap comes from the settings alone (:func:`hinqs.sqd.dimension.resolve_max_dimension`),
    so the same config caps the same batches on every machine. The memory the step has
    (divided among ``parallel.workers`` whatever the executor, so that the sequential
    reference path and the parallel path agree) only refuses a batch that does not fit, or,
    with ``sqd.shrink_to_memory``, cuts it further (recorded under ``shrunk``). Raises
    :class:`InputError` (one line) for a batch that still does not fit. ``budget`` replaces
    that share (the ``distributed`` executor's: what each of its ranks has, each rank holding
    its share of the batch, :func:`hinqs.sqd.dimension.estimate_mb` with the ranks).
    """
    if budget is None:
        budget = memory_budget(settings.parallel.workers, settings.memory_mb)
    solver = settings.solver.solver
    parallel = settings.parallel
    configured = resolve_max_dimension(settings.max_dimension, solver, settings.memory_mb, parallel.workers,
                                       parallel.executor)  # fmt: skip
    max_dimension, shrunk = configured, None
    if settings.shrink_to_memory:
        max_dimension, shrunk = _shrunk_cap(batches, configured, budget, solver)
    batches = _capped(batches, max_dimension, nelec, teacher)
    check_fits(batches, solver, budget, max_dimension, settings.shrink_to_memory)
    _log_caps(batches, max_dimension)
    plan = {
        "max_dimension": max_dimension,
        "memory": budget.as_dict(),
        "n_capped": sum(bool(b.cap and b.cap["capped"]) for b in batches),
        "shrunk": shrunk,
    }
    return batches, plan


def _rank_budget(runner: BatchExecutor, settings: SQDSettings) -> MemoryBudget | None:
    """The memory per rank when ``runner`` spreads each batch over MPI ranks, else None (per worker)."""
    from hinqs.sqd.executors.distributed import DistributedExecutor

    return runner.memory_budget(settings.memory_mb) if isinstance(runner, DistributedExecutor) else None


def _shrunk_cap(
    batches: list[Batch], configured: int | None, budget: MemoryBudget, solver: str
) -> tuple[int | None, dict[str, Any] | None]:
    """``sqd.shrink_to_memory``: the cap lowered to what a worker's memory holds, when a batch
    (after the configured cap) would not fit; with a record of the cut for result.json."""
    fits = memory_dimension(budget, solver)
    after_cap = [min(b.n_determinants, configured) if configured is not None else b.n_determinants for b in batches]
    if fits < 1 or all(estimate_mb(d, solver, budget.ranks) <= budget.per_worker_mb for d in after_cap):
        return configured, None  # nothing to shrink (or nothing fits: check_fits refuses)
    cut = [b.index for b, d in zip(batches, after_cap, strict=True) if d > fits]
    log.warning(
        "sqd.shrink_to_memory: batches %s cut to %d determinants to fit %.0f MB per worker (%s); "
        "this cap depends on the machine", cut, fits, budget.per_worker_mb, budget.source,
    )  # fmt: skip
    record = {"configured_max_dimension": configured, "max_dimension": fits, "batches": cut, "memory": budget.as_dict()}
    return fits, record


def _capped(
    batches: list[Batch], max_dimension: int | None, nelec: tuple[int, int], teacher: str | os.PathLike[str] | None
) -> list[Batch]:
    """The batches cut to ``max_dimension``; the teacher is read only when a batch is cut."""
    if max_dimension is None:
        return batches
    weights = None
    if teacher is not None and any(b.n_determinants > max_dimension for b in batches):
        weights = teacher_marginals(teacher)
    return [cap_batch(b, max_dimension, nelec, weights) for b in batches]


def _log_caps(batches: list[Batch], max_dimension: int | None) -> None:
    """A warning per capped batch: the cut changes the answer, so it must be seen."""
    for batch in batches:
        if batch.cap and batch.cap["capped"]:
            log.warning(
                "batch %d capped to sqd.max_dimension = %d: %d x %d -> %d x %d (dropped %d alpha, %d beta strings)",
                batch.index, max_dimension, *batch.cap["shape_before"], *batch.cap["shape_after"],
                *batch.cap["strings_dropped"],
            )  # fmt: skip


def _convergence_report(ordered: list[dict[str, Any]], best: int) -> dict[str, Any]:
    """Merged convergence: did the winning batch converge, and which batches did not."""
    unconverged = [r["index"] for r in ordered if r["status"] == "ok" and r.get("converged") is False]
    best_record = next(r for r in ordered if r["index"] == best)
    for index in unconverged:
        record = next(r for r in ordered if r["index"] == index)
        log.warning(
            "WARNING batch %d: Davidson stopped at max_cycle without converging (residual %s)%s",
            index, record.get("residual_norm"), " -- this is the merged (best) batch" if index == best else "",
        )  # fmt: skip
    return {
        "converged": best_record.get("converged") is not False,
        "residual_norm": best_record.get("residual_norm"),
        "unconverged_batches": unconverged,
    }


def _validated_subspace(
    alpha: np.ndarray, beta: np.ndarray, counts: np.ndarray | None, meta: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The subspace as uint64 strings and float64 counts, checked against the Hamiltonian."""
    alpha, beta = np.asarray(alpha), np.asarray(beta)
    if not (np.issubdtype(alpha.dtype, np.integer) and np.issubdtype(beta.dtype, np.integer)):
        raise InputError("alpha and beta must be integer CI strings")
    alpha, beta = alpha.astype(np.uint64), beta.astype(np.uint64)
    counts = None if counts is None else np.asarray(counts, dtype=np.float64)
    _check_subspace(alpha, beta, counts, meta)
    return alpha, beta, counts


def _open_output(out_dir: str | os.PathLike[str]) -> Path:
    """The output folder, without the merged files of an earlier run (a failed rerun must not
    leave old answers); a folder that cannot be made is one line, not a traceback."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in (SQDFiles(out).result, SQDFiles(out).state):
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise WriteFailed(describe_os_error(out, exc)) from None
    return out


@dataclass
class _Ledger:
    """Per-batch fingerprints and the records of finished batches, as the step goes."""

    out: Path
    hashes: dict[int, str]
    prints: dict[int, str]
    caps: dict[int, Any]
    records: dict[int, dict[str, Any]]

    def pending(
        self, batches: list[Batch], ham_dir: Path, nelec: tuple[int, int], settings: SQDSettings, guess: str | None
    ) -> list:
        """Tasks of the batches not finished by an earlier run with the same inputs."""
        tasks = []
        for batch in batches:
            previous = store.load_finished(self.out, batch.index, self.prints[batch.index])
            if previous is not None:
                self.records[batch.index] = {**previous, "cap": batch.cap}
                log.info("batch %d: reused from an earlier run (E = %.10f)", batch.index, previous["energy"])
                continue
            tasks.append(
                BatchTask(str(ham_dir), batch.index, batch.ci_strs_a, batch.ci_strs_b, nelec, settings.solver,
                          initial_guess=guess)
            )  # fmt: skip
        return tasks

    def record(self, outcome: BatchOutcome) -> None:
        """Save a finished batch (resume point) and log it."""
        index = outcome.index
        self.records[index] = store.save_outcome(
            self.out, outcome, self.prints[index], self.hashes[index], extra={"cap": self.caps[index]}
        )
        if outcome.ok:
            log.info(
                "batch %d: E = %.10f  (%d x %d, %.1f s, %s threads%s)",
                index, outcome.energy, *outcome.product_shape, outcome.seconds, outcome.threads,
                "" if outcome.converged else ", NOT converged",
            )  # fmt: skip
        else:
            log.warning("batch %d failed after %d attempt(s): %s", index, outcome.attempt, outcome.error)


def _summary(
    ordered: list[dict[str, Any]], best: int, context: dict[str, Any], report: ExecutorReport, started: float
) -> dict[str, Any]:
    """result.json's content: the merged energy, convergence, every batch and how the step ran."""
    return {
        "format": RESULT_FORMAT,
        "energy": float(next(r for r in ordered if r["index"] == best)["energy"]),
        "best_batch": best,
        "batch_energies": [r["energy"] for r in ordered],
        "n_batches": len(ordered),
        "n_ok": sum(r["status"] == "ok" for r in ordered),
        "n_failed": sum(r["status"] != "ok" for r in ordered),
        "n_reused": sum(bool(r.get("reused")) for r in ordered),
        **_convergence_report(ordered, best),
        "dimensions": [r["n_determinants"] for r in ordered],
        **context,
        "executor": report.as_dict(),
        "timing": {
            "wall_seconds": time.perf_counter() - started,
            "pool_start_seconds": report.pool_start_seconds,
            "batch_seconds_sum": sum(r["seconds"] for r in ordered if not r.get("reused")),
        },
        "warnings": [f"batch {r['index']}: {w}" for r in ordered for w in r["warnings"]],
        "batches": ordered,
    }


def _context(plan: dict[str, Any], subspace: Any, n_input: int, n_batches: int, ham_dir: Path, meta: dict[str, Any],
             nelec: tuple[int, int], settings: SQDSettings) -> dict[str, Any]:  # fmt: skip
    """What result.json records about the inputs: caps, subspace, Hamiltonian and settings."""
    return {
        "capping": plan,
        "subspace": {
            "input_determinants": n_input,
            "unique_determinants": len(subspace),
            "single_batch": n_batches == 1,
        },
        "hamiltonian": {
            "dir": str(ham_dir),
            "norb": int(meta["norb"]),
            "nelec": list(nelec),
            "ecore": float(meta["ecore"]),
            "sha256": meta.get("sha256"),
        },
        "settings": settings.as_dict(),
    }


def spin_held(settings: SQDSettings, meta: dict[str, Any], nelec: tuple[int, int]) -> SQDSettings:
    """``settings`` with the state's spin held from the first Davidson cycle where prepare found
    the spin symmetry broken (meta.json's ``open_shells.hold_spin``) and the config sets no
    ``sqd.spin_sq`` of its own.

    There the roots of neighbouring spins lie close (an antiferromagnet's spin ladder: the
    [2Fe-2S] model's first unpenalised solve converged on a root of another spin), and solving
    unpenalised first, then again with the penalty, pays for two solves."""
    held = (meta.get("open_shells") or {}).get("hold_spin")
    if not held or settings.solver.spin_sq is not None:
        return settings
    return replace(settings, solver=replace(settings.solver, spin_sq=target_spin_square(nelec)))


def run_diagonalization(
    hamiltonian_dir: str | os.PathLike[str],
    alpha: np.ndarray,
    beta: np.ndarray,
    counts: np.ndarray | None,
    out_dir: str | os.PathLike[str],
    settings: SQDSettings,
    *,
    executor: BatchExecutor | None = None,
    teacher: str | os.PathLike[str] | None = None,
) -> StepResult:
    """Diagonalise ``n_batches`` batches of the subspace and merge them; see the module docstring.

    Batches already finished in ``out_dir`` by an earlier run with the same inputs are
    reused. ``executor`` overrides the one named in ``settings.parallel``. ``teacher`` (the
    previous iteration's state.npz) is read only when a batch must be capped.
    """
    started = time.perf_counter()
    ham_dir = Path(hamiltonian_dir).resolve()
    meta = load_hamiltonian(ham_dir).meta  # a truncated or altered integral file is refused here, once
    norb, nelec = active_shape(meta, ham_dir)
    alpha, beta, counts = _validated_subspace(alpha, beta, counts, meta)
    settings = spin_held(settings, meta, nelec)
    if teacher is not None:  # a state of another system is refused before anything is written
        read_state(teacher, sort=True, norb=norb, nelec=nelec)
    subspace = canonical_subspace(alpha, beta, counts)
    batches = form_batches(subspace, nelec, n_batches=settings.n_batches, samples_per_batch=settings.samples_per_batch,
                           seed=settings.seed, iteration=settings.iteration)  # fmt: skip
    runner = executor or executor_for(settings)
    batches, plan = plan_batches(batches, settings, nelec, teacher, _rank_budget(runner, settings))
    spread = settings.parallel.executor == "distributed"
    check_step_device(batches, settings.solver, norb, nelec, settings.parallel.workers, spread)
    # Warm start: every batch's Davidson starts from the previous ground state (the teacher),
    # so what that state holds is part of every batch's fingerprint.
    guess = str(Path(teacher).resolve()) if teacher is not None and settings.solver.warm_start else None
    guess_digest = None if guess is None else store.state_digest(guess)
    out = _open_output(out_dir)
    hashes = {b.index: b.content_hash() for b in batches}
    prints = {i: store.fingerprint(meta, h, settings.solver, guess_digest) for i, h in hashes.items()}
    ledger = _Ledger(out, hashes, prints, {b.index: b.cap for b in batches}, {})
    tasks = ledger.pending(batches, ham_dir, nelec, settings, guess)
    report = runner.run(tasks, ledger.record) if tasks else ExecutorReport(settings.parallel.executor, 0, 0)
    ordered = [ledger.records[b.index] for b in batches]
    best = merge.select_best(ordered)
    if best is None:
        raise StepFailed(f"all {len(batches)} batches failed: {merge.failure_summary(ordered)}")
    context = _context(plan, subspace, len(alpha), len(batches), ham_dir, meta, nelec, settings)
    summary = _summary(ordered, best, context, report, started)
    files = SQDFiles(out)
    write_state(files.state, store.load_state(out, best), summary["energy"], best, hamiltonian_id(meta))
    write_result(files.result, summary)  # last: the step's commit marker
    return step_result(summary, files.result)
