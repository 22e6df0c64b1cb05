"""The EN-PT2 correction of one iteration's variational state (the energy's error bar)."""

from __future__ import annotations

import argparse
from typing import Any

from hinqs.cli._options import add_config, load_settings, require_iteration

COMMAND = "pt2"
HELP = "Epstein-Nesbet PT2 correction of a ground state (pt2.json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, purpose="its `pt2` section and `parallel` (the threads)")
    parser.add_argument("--hamiltonian", required=True, help="Hamiltonian folder")
    parser.add_argument("--state", required=True, help="sqd/state.npz of the iteration")
    parser.add_argument("--iteration", type=int, required=True, help="iteration number (names the random stream)")
    parser.add_argument("--out", required=True, help="pt2.json to write")
    parser.add_argument(
        "--threads", type=int,
        help="threads of the kernel (default: the diagonalize step's cores, parallel.workers x threads_per_worker;"
        " under MPI with parallel.executor distributed, shared among the ranks); the sum is the same bits at any"
        " count",
    )  # fmt: skip


def _ranks(executor: str) -> Any | None:
    """MPI's world when the step runs under a launcher for the ``distributed`` executor (more than
    one rank), else None: the rows are then dealt over the ranks, as the diagonalize step's
    products are."""
    if executor != "distributed":
        return None
    from hinqs.sqd.executors.distributed import world

    comm = world()
    return comm if comm.Get_size() > 1 else None


def run(args: argparse.Namespace) -> int:
    from hinqs.errors import InputError
    from hinqs.steps.pt2 import estimate_pt2

    require_iteration(args.iteration)
    settings = load_settings(args.config, args.hamiltonian)
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be at least 1, not {args.threads}")
    threads = args.threads or settings.step_cores()
    comm = _ranks(settings.parallel.executor)
    if comm is not None:
        threads = max(1, threads // comm.Get_size())
    record = estimate_pt2(settings.pt2, threads, args.hamiltonian, args.state, args.out,
                          seed=settings.seed, iteration=args.iteration, comm=comm)  # fmt: skip
    if comm is not None and comm.Get_rank() != 0:
        return 0
    if "skipped" in record:
        print(f"hinqs pt2: skipped ({record['skipped']})")
    else:
        half = record["e_pt2_ci95"]
        rows = f"{record['rows_computed']:,} of {record['rows']:,} rows summed exactly"
        kind = "complete" if record["complete"] else f"semistochastic, {record['draws']:,} draws, {rows}"
        kind += f", {record['ranks']} ranks" if record["ranks"] > 1 else ""
        bar = f" +- {half:.1e} (95 %)" if half else ""
        print(
            f"hinqs pt2: E_var = {record['e_var']:.10f}  E_PT2 = {record['e_pt2']:.4e}{bar}  "
            f"E_var + E_PT2 = {record['e_total']:.10f} Ha ({kind}, {record['seconds']:.1f} s)"
        )
    return 0
