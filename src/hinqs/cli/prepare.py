"""Compute a system's active-space integrals with PySCF and write the Hamiltonian folder.

Writes DIR/hcore.npy, DIR/eri.npy (full 4-index, chemist's notation, memory-mappable) and
DIR/meta.json (norb, nelec, core energy, HF and reference energies, checksums, versions).
The folder appears only when complete.
"""

from __future__ import annotations

import argparse

from hinqs.cli._options import add_config, add_positional_config_pointer, load_settings

COMMAND = "prepare"
HELP = "SCF + active space -> hcore.npy, eri.npy, meta.json (with reference energies)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, required=False)  # required, checked after the pointer for the old positional form
    parser.add_argument("--out", required=True, help="Hamiltonian folder to write")
    parser.add_argument("--system", help="system name (needed when the config has several)")
    add_positional_config_pointer(parser)


def run(args: argparse.Namespace) -> int:
    from hinqs.steps.prepare import prepare

    out = prepare(load_settings(args.config), args.system, args.out)
    print(f"hinqs prepare: wrote {out}")
    return 0
