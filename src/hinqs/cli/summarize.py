"""Write a system's summary.json, energies.csv and convergence.png; or print a finished run's results."""

from __future__ import annotations

import argparse
from pathlib import Path

from hinqs.errors import InputError

COMMAND = "summarize"
HELP = "summary of one system (with --iterations), or the result lines of a finished run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory",
        help="with --iterations: the system's results folder (holds hamiltonian/ and iter_*/); "
        "without: a results folder or a system folder of a finished run, whose result lines are printed",
    )
    parser.add_argument("--iterations", type=int, help="number of finished iterations: (re)write the summary")
    parser.add_argument("--reference-energy", type=float, help="a user-supplied reference total energy (Ha)")
    parser.add_argument("--reference-source", help="where --reference-energy comes from")


def run(args: argparse.Namespace) -> int:
    from hinqs.summary import result_line, result_lines

    if args.iterations is not None:
        from hinqs.steps.summarize import summarize

        if args.iterations < 1:
            raise InputError("--iterations must be at least 1")
        if (args.reference_energy is None) != (args.reference_source is None):
            raise InputError("give --reference-energy and --reference-source together")
        user = None
        if args.reference_energy is not None:
            user = {"energy": args.reference_energy, "source": args.reference_source}
        print(result_line(summarize(args.directory, args.iterations, user)))
        return 0
    directory = Path(args.directory)
    if not directory.is_dir():
        raise InputError(f"no results folder at {directory}")
    if (directory / "summary.json").exists():
        lines = result_lines(directory.parent, [directory.name])
    else:
        lines = result_lines(directory)
    if not lines:
        raise InputError(f"{directory} holds no summary.json (has the run finished?)")
    print("\n".join(lines))
    return 0
