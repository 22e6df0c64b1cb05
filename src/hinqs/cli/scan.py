"""Tabulate and plot several systems' final energies against their references (a scan)."""

from __future__ import annotations

import argparse

COMMAND = "scan"
HELP = "potential-energy curve (scan.csv, scan.png) over several systems' summaries"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="run config (for the systems' coordinates)")
    parser.add_argument("summaries", nargs="+", help="summary.json files, in the config's system order")
    parser.add_argument("--csv", required=True, help="table to write")
    parser.add_argument("--png", required=True, help="plot to write")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from hinqs.config import load_config
    from hinqs.summary import write_scan

    systems = load_config(args.config)["systems"]
    summaries = [json.loads(Path(p).read_text()) for p in args.summaries]
    coordinates = [float(s.get("coordinate", i)) for i, s in enumerate(systems)]
    write_scan(summaries, coordinates, Path(args.csv), Path(args.png))
    return 0
