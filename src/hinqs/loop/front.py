"""The ``snakemake`` command of the repository's environment: config files checked before Snakemake reads them.

Snakemake loads every ``--configfile`` while it parses its command line, before the
Snakefile (and hinqs' one-line config check, :mod:`hinqs.config`) runs; a missing, unreadable
or malformed file ends in a Python traceback of Snakemake's internals. ``make setup`` points
``.venv/bin/snakemake`` at :func:`main`, which names such a file in one line (exit 2) and
otherwise hands the command line, unchanged, to Snakemake's own entry point. Jobs Snakemake
starts itself (``python -m snakemake``) do not pass through here: their config was checked.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

CONFIG_OPTIONS = ("--configfile", "--configfiles")


def config_files(argv: Sequence[str]) -> list[str]:
    """The paths given to ``--configfile``/``--configfiles`` (``--opt a b``, ``--opt=a``), in order.

    Both options take one or more values, up to the next argument that starts with ``-``
    (Snakemake's argparse ``nargs="+"``)."""
    paths: list[str] = []
    taking = False
    for arg in argv:
        option, equals, value = arg.partition("=")
        if option in CONFIG_OPTIONS:
            taking = not equals
            if equals:
                paths.append(value)
            continue
        if arg.startswith("-"):
            taking = False
        elif taking:
            paths.append(arg)
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """``snakemake`` with its config files checked first (one line and exit 2 on the first bad one)."""
    from hinqs.config import read_config_file
    from hinqs.errors import InputError

    args = list(sys.argv[1:] if argv is None else argv)
    for path in config_files(args):
        try:
            read_config_file(path)
        except InputError as exc:
            print(f"snakemake: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    from snakemake.cli import main as snakemake_main

    snakemake_main(args)
