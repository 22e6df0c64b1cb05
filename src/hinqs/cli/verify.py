"""Run the HI-NQS-SQD loop twice with one seed — sequential and parallel — and compare.

Path A solves the batches one after another in-process with one thread; path B uses the
config's executor, workers and threads. Writes OUT/report.json and OUT/report.txt (the
largest deviation of each quantity) and exits 0 only when the paths agree: bit for bit
with one thread per solve, energies within 1e-10 Ha when thread counts differ. Otherwise
it names the first iteration and quantity that diverged and exits 1.
"""

from __future__ import annotations

import argparse

from hinqs.cli._options import add_config, add_positional_config_pointer, load_settings

COMMAND = "verify"
HELP = "run the loop sequentially and in parallel with one seed and compare everything"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, required=False)  # required, checked after the pointer for the old positional form
    parser.add_argument("--system", help="system name (needed when the config has several)")
    parser.add_argument("--out", default="results/verify", help="folder for both runs and the report")
    parser.add_argument("--iterations", type=int, help="stop after this many iterations (default: iterations.max)")
    parser.add_argument(
        "--parallel-seed",
        type=int,
        help="run the parallel path with another seed (a deliberate divergence, to check the check)",
    )
    add_positional_config_pointer(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hinqs.errors import InputError, StepFailed
    from hinqs.loop.verify import verify_settings

    settings = load_settings(args.config)
    if args.iterations is not None and args.iterations < 1:
        raise InputError("--iterations must be at least 1")
    system = settings.system(args.system)["name"]
    data, table = verify_settings(
        settings, system, Path(args.out), iterations=args.iterations, parallel_seed=args.parallel_seed
    )
    print(table)
    if not data["identical"]:
        first = data["first_divergence"]
        where = f"iteration {first['iteration']}, {first['quantity']}" if first else "the number of iterations"
        raise StepFailed(f"the parallel path diverged from the sequential path at {where}")
    return 0
