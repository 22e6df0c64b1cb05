"""Decide whether the loop stops after this iteration (energy converged or maximum reached)."""

from __future__ import annotations

import argparse

from hinqs.cli._options import add_config, load_settings
from hinqs.errors import InputError

COMMAND = "check"
RENAMED = {"--previous": "--previous-status"}
HELP = "convergence check of one iteration -> status.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, purpose="iterations.tol, window, max")
    parser.add_argument("--iteration", type=int, required=True, help="this iteration's number (from 1)")
    parser.add_argument("--result", required=True, help="this iteration's sqd/result.json")
    parser.add_argument("--previous-status", help="status.json of the previous iteration (none at the first)")
    parser.add_argument("--out", required=True, help="status.json to write")


def run(args: argparse.Namespace) -> int:
    from hinqs.steps.check import check

    settings = load_settings(args.config)
    if args.iteration < 1:
        raise InputError("--iteration must be at least 1 (the first iteration is 1)")
    status = check(settings.iterations, args.iteration, args.result, args.out, previous_status=args.previous_status)
    print(f"hinqs check: iteration {args.iteration} E={status.energy:.10f} stop={status.stop} ({status.reason})")
    return 0
