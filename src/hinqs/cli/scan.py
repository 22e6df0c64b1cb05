"""Tabulate and plot several systems' final energies against their references (a scan)."""

from __future__ import annotations

import argparse

from hinqs.cli._options import add_config, load_settings

COMMAND = "scan"
HELP = "potential-energy curve (scan.csv, scan.png) over several systems' summaries"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, purpose="the systems' coordinates")
    parser.add_argument("summaries", nargs="+", help="summary.json files, in the config's system order")
    parser.add_argument("--csv", required=True, help="table to write")
    parser.add_argument("--png", required=True, help="plot to write")


def run(args: argparse.Namespace) -> int:
    from hinqs.steps.summarize import scan

    scan(load_settings(args.config), args.summaries, args.csv, args.png)
    return 0
