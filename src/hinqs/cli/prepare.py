"""Compute a system's active-space integrals with PySCF and write the Hamiltonian folder.

Writes DIR/hcore.npy, DIR/eri.npy (full 4-index, chemist's notation, memory-mappable) and
DIR/meta.json (norb, nelec, core energy, HF and reference energies, checksums, versions).
The folder appears only when complete.
"""

from __future__ import annotations

import argparse

COMMAND = "prepare"
HELP = "SCF + active space -> hcore.npy, eri.npy, meta.json (with reference energies)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config (YAML)")
    parser.add_argument("--out", required=True, help="Hamiltonian folder to write")
    parser.add_argument("--system", help="system name (needed when the config has several)")


def run(args: argparse.Namespace) -> int:
    from hinqs.config import get_system, load_config
    from hinqs.prepare import prepare_system

    config = load_config(args.config)
    system = get_system(config, args.system)
    out = prepare_system(system, config["references"], args.out)
    print(f"hinqs prepare: wrote {out}")
    return 0
