"""Decide whether the loop stops after this iteration (energy converged or maximum reached)."""

from __future__ import annotations

import argparse

COMMAND = "check"
HELP = "convergence check of one iteration -> status.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="run config (iterations.tol, window, max)")
    parser.add_argument("--iteration", type=int, required=True, help="this iteration's number (from 1)")
    parser.add_argument("--result", required=True, help="this iteration's sqd/result.json")
    parser.add_argument("--previous", help="status.json of the previous iteration (none at the first)")
    parser.add_argument("--out", required=True, help="status.json to write")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from hinqs.atomic import write_json
    from hinqs.config import load_config
    from hinqs.convergence import next_status, read_status
    from hinqs.errors import InputError

    settings = load_config(args.config)["iterations"]
    previous = read_status(args.previous) if args.previous else None
    try:
        energy = float(json.loads(Path(args.result).read_text())["energy"])
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read the merged energy from {args.result}: {exc}") from None
    status = next_status(
        previous, args.iteration, energy, tol=settings["tol"], window=settings["window"], max_iterations=settings["max"]
    )
    write_json(args.out, status)
    print(f"hinqs check: iteration {args.iteration} E={energy:.10f} stop={status['stop']} ({status['reason']})")
    return 0
