"""Diagonalise batches of a subspace in parallel and merge them (one SQD step).

Reads the subspace from ``--subspace FILE.npz`` (``alpha`` and ``beta`` uint64 CI strings, optional
``counts``), draws ``--batches`` batches of ``--samples-per-batch`` determinants from the
seeded streams of ``--iteration``, solves them with the chosen executor and writes
``OUT/result.json`` (merged energy, best batch, every batch's status) and ``OUT/state.npz``
(the best batch's state). Settings not given on the command line come from ``--config``,
else from the config schema's defaults. Rerun with the same inputs after a crash: the
batches already finished in OUT are reused.

For the mpi executor, start it under MPI with mpi4py's pool server, e.g.
``mpiexec -n 5 python -m mpi4py.futures -m hinqs diagonalize ... --executor mpi``. For the
distributed executor (every batch spread over all ranks), start it SPMD, e.g.
``mpiexec -n 4 python -m mpi4py -m hinqs diagonalize ... --executor distributed``: rank 0
writes the outputs and prints the energy, the other ranks only help solve.
"""

from __future__ import annotations

import argparse
from typing import Any

from hinqs.cli._options import add_config, load_settings
from hinqs.sqd.registry import EXECUTORS, SOLVERS

COMMAND = "diagonalize"
RENAMED = {"--configs": "--subspace", "--pool": "--subspace"}
HELP = "diagonalise batches of determinants in parallel and merge them (one SQD step)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hinqs diagonalize``."""
    parser.add_argument("--hamiltonian", required=True, metavar="DIR", help="Hamiltonian folder (hinqs prepare)")
    parser.add_argument(
        "--subspace", required=True, metavar="FILE.npz", help="the subspace: alpha, beta (uint64), counts"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (result.json, state.npz)")
    add_config(parser, required=False, purpose="seed, sqd.*, parallel.* (default: the schema's defaults)")
    parser.add_argument("--batches", type=int, metavar="N", help="number of batches (sqd.n_batches)")
    parser.add_argument("--samples-per-batch", type=int, metavar="M", help="determinants per batch")
    parser.add_argument("--solver", choices=SOLVERS, help="batch solver (sqd.solver)")
    parser.add_argument("--executor", choices=EXECUTORS, help="where batches run")
    parser.add_argument("--workers", type=int, metavar="W", help="worker processes, or MPI ranks (parallel.workers)")
    parser.add_argument("--threads-per-worker", type=int, metavar="T", help="OpenMP/BLAS threads per worker")
    parser.add_argument("--seed", type=int, metavar="S", help="run seed")
    parser.add_argument("--iteration", type=int, default=0, metavar="K", help="iteration (names the batch streams)")
    parser.add_argument("--batch-timeout", type=float, metavar="SEC", help="seconds before a batch is stopped")
    parser.add_argument("--retries", type=int, metavar="R", help="extra attempts for a failed batch")
    parser.add_argument("--max-cycle", type=int, metavar="N", help="Davidson iteration limit (sqd.max_cycle)")
    parser.add_argument("--max-dimension", type=int, metavar="N", help="cap on a batch's K_a x K_b (0: no cap)")
    parser.add_argument("--memory-mb", type=float, metavar="MB", help="memory the step may use (sqd.memory_mb)")
    parser.add_argument(
        "--shrink-to-memory", action="store_true", default=None,
        help="cut a batch that does not fit the memory to what fits (sqd.shrink_to_memory)",
    )  # fmt: skip
    parser.add_argument("--teacher", metavar="STATE.npz", help="previous state: ranks strings when a batch is capped")
    parser.add_argument("--quiet", action="store_true", help="no per-batch progress lines on stderr")


def _log_to_stderr(quiet: bool) -> None:
    import logging
    import sys

    logger = logging.getLogger("hinqs.sqd")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("hinqs diagonalize: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def run(args: argparse.Namespace) -> int:
    """Run one diagonalisation step; print the merged energy."""
    from hinqs.loop.settings import RunSettings, with_overrides

    _log_to_stderr(args.quiet)
    if args.config:
        settings = load_settings(args.config, args.hamiltonian)
    else:
        settings = RunSettings.defaults().for_hamiltonian(args.hamiltonian)
    step = with_overrides(
        settings.sqd_step(args.iteration),
        seed=args.seed,
        n_batches=args.batches,
        samples_per_batch=args.samples_per_batch,
        max_dimension=args.max_dimension,
        memory_mb=args.memory_mb,
        shrink_to_memory=args.shrink_to_memory,
        solver__solver=args.solver,
        solver__max_cycle=args.max_cycle,
        parallel__executor=args.executor,
        parallel__workers=args.workers,
        parallel__threads_per_worker=args.threads_per_worker,
        parallel__batch_timeout=args.batch_timeout,
        parallel__retries=args.retries,
    )
    if step.parallel.executor == "distributed":
        from hinqs.sqd.executors.distributed import spmd

        par = step.parallel
        return spmd(par.threads_per_worker, par.retries, par.batch_timeout, lambda ex: _solve(args, step, ex))
    return _solve(args, step, None)


def _solve(args: argparse.Namespace, step: Any, executor: Any) -> int:
    """The step itself (``executor`` None: the one the settings name); print the merged energy.

    hinqs' kernels (the ``direct`` solver's), where numba's cache lacks them, are compiled here
    once, before any worker or other rank needs them (:mod:`hinqs.steps.warm`), and the log
    says what it cost.
    """
    from hinqs.steps.diagonalize import diagonalize

    if step.solver.solver == "direct":
        from hinqs.steps.warm import kernels_cached, warm_kernels

        if not kernels_cached():
            print(warm_kernels().line(), flush=True)
    result = diagonalize(args.hamiltonian, args.subspace, args.out, step, executor=executor, teacher=args.teacher)
    summary = result.summary
    print(
        f"E = {result.energy!r} Ha (batch {result.best_batch}; {summary['n_ok']} ok, "
        f"{summary['n_failed']} failed, {summary['n_reused']} reused) -> {result.result_path}"
    )
    return 0
