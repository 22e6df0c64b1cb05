"""Create a fresh NQS checkpoint for one system: shape from the Hamiltonian, size and seed from the config.

The weights are drawn from the named stream ("nqs-init", SYSTEM) of the run seed, on the
CPU, so the same config gives the same initial model on every machine and device.
"""

from __future__ import annotations

import argparse

from hinqs.cli._options import add_config, load_settings, require_system_of

COMMAND = "init-model"
HELP = "initialise the neural quantum state (model.pt) of a system from the config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument("--hamiltonian", required=True, help="Hamiltonian folder (norb and nelec from meta.json)")
    parser.add_argument("--out", required=True, help="checkpoint to write (model.pt)")
    parser.add_argument("--system", help="system name (needed when the config has several)")


def run(args: argparse.Namespace) -> int:
    from hinqs.steps.nqs import init_model

    settings = load_settings(args.config, args.hamiltonian)
    system = settings.system(args.system)["name"]
    require_system_of(args.hamiltonian, system)
    report = init_model(settings.nqs, settings.seed, system, args.hamiltonian, args.out)
    nqs = settings.nqs
    print(
        f"hinqs init-model: {system}: norb={report.norb} nelec={report.nelec} d_model={nqs.d_model} "
        f"n_layers={nqs.n_layers} n_heads={nqs.n_heads} ({report.n_parameters} parameters) -> {args.out}"
    )
    return 0
