"""Decide whether the loop stops after this iteration (accurate, budget, stalled, ...) and the next cap."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hinqs.cli._options import add_config, load_settings
from hinqs.errors import InputError

if TYPE_CHECKING:
    from hinqs.loop.convergence import Status

COMMAND = "check"
RENAMED = {"--previous": "--previous-status"}
HELP = "convergence check of one iteration -> status.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, purpose="iterations (tol, window, max) and accuracy (target, growth, budget)")
    parser.add_argument("--iteration", type=int, required=True, help="this iteration's number (from 1)")
    parser.add_argument("--result", required=True, help="this iteration's sqd/result.json")
    parser.add_argument("--previous-status", help="status.json of the previous iteration (none at the first)")
    parser.add_argument("--pt2", help="this iteration's pt2.json: the error estimate the stop reads")
    parser.add_argument("--hamiltonian", help="Hamiltonian folder (the system's size, for growing the cap)")
    parser.add_argument("--out", required=True, help="status.json to write")


def status_line(status: Status) -> str:
    """The decision in words: energy, PT2, the cap and, when stopping, why."""
    text = f"iteration {status.iteration} E={status.energy:.10f}"
    if status.e_pt2 is not None:
        text += f" E_PT2={status.e_pt2 * 1000:.3f} mHa"
    if status.strings_cap:
        grown = status.next_strings_cap != status.strings_cap
        text += f", cap {status.strings_cap:,} strings" + (f" -> {status.next_strings_cap:,}" if grown else "")
    if status.stop:
        text += f", stop: {status.reason}" + (f" ({status.detail})" if status.detail else "")
    return text


def run(args: argparse.Namespace) -> int:
    from hinqs.steps.check import check

    settings = load_settings(args.config)
    if args.iteration < 1:
        raise InputError("--iteration must be at least 1 (the first iteration is 1)")
    status = check(
        settings, args.iteration, args.result, args.out,
        previous_status=args.previous_status, pt2=args.pt2, hamiltonian=args.hamiltonian,
    )  # fmt: skip
    print(f"hinqs check: {status_line(status)}")
    return 0
