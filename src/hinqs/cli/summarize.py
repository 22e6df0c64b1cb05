"""Write a system's summary.json, energies.csv and convergence.png from its iteration files."""

from __future__ import annotations

import argparse

COMMAND = "summarize"
HELP = "summary.json, energies.csv and convergence.png of one system"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("system_dir", help="results folder of the system (holds hamiltonian/ and iter_*/)")
    parser.add_argument("--iterations", type=int, required=True, help="number of finished iterations")


def run(args: argparse.Namespace) -> int:
    from hinqs.steps.summarize import summarize

    summary = summarize(args.system_dir, args.iterations)
    errors = ", ".join(f"{k} {v:+.4f} mHa" for k, v in summary["error_mha"].items())
    print(f"hinqs summarize: {summary['system']} E={summary['best_energy']:.10f} ({errors})")
    return 0
