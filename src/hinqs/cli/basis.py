"""Grow the cumulative determinant basis: previous basis + this iteration's samples + HF."""

from __future__ import annotations

import argparse

COMMAND = "basis"
HELP = "merge sampled determinants into the cumulative basis (basis.npz)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hamiltonian", required=True, help="Hamiltonian folder (for norb and nelec)")
    parser.add_argument("--samples", required=True, help="samples.npz of this iteration")
    parser.add_argument("--previous", help="basis.npz of the previous iteration (none at the first)")
    parser.add_argument("--out", required=True, help="basis.npz to write")


def run(args: argparse.Namespace) -> int:
    from hinqs.basis import grow_basis, load_determinants, save_determinants
    from hinqs.hamiltonian import read_meta

    meta = read_meta(args.hamiltonian)
    nelec = (int(meta["nelec"][0]), int(meta["nelec"][1]))
    previous = load_determinants(args.previous) if args.previous else None
    basis = grow_basis(previous, load_determinants(args.samples), int(meta["norb"]), nelec)
    save_determinants(args.out, basis)
    grown = len(basis) - (len(previous) if previous else 0)
    print(f"hinqs basis: {len(basis)} determinants ({grown} new)")
    return 0
