"""Rotate a Hamiltonian into the natural orbitals of an iteration's variational state."""

from __future__ import annotations

import argparse

from hinqs.cli._options import require_iteration

COMMAND = "natural-orbitals"
HELP = "the Hamiltonian in the natural orbitals of a ground state (a new Hamiltonian folder)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hamiltonian", required=True, help="Hamiltonian folder the state was solved in")
    parser.add_argument("--state", required=True, help="sqd/state.npz of the iteration")
    parser.add_argument("--iteration", type=int, required=True, help="the state's iteration (recorded)")
    parser.add_argument("--out", required=True, help="Hamiltonian folder to write")


def run(args: argparse.Namespace) -> int:
    from hinqs.steps.orbitals import natural_hamiltonian

    require_iteration(args.iteration)
    record = natural_hamiltonian(args.hamiltonian, args.state, args.out, iteration=args.iteration)
    occ = record["occupations"]
    print(
        f"hinqs natural-orbitals: {len(occ)} orbitals from iteration {record['iteration']}'s state, occupations "
        f"{occ[0]:.4f} ... {occ[-1]:.2e} ({record['seconds']:.1f} s)"
    )
    return 0
