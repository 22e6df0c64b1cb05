"""Create a fresh NQS checkpoint for one system: shape from the Hamiltonian, size and seed from the config.

The weights are drawn from the named stream ("nqs-init", SYSTEM) of the run seed, on the
CPU, so the same config gives the same initial model on every machine and device.
"""

from __future__ import annotations

import argparse

COMMAND = "init-model"
HELP = "initialise the neural quantum state (model.pt) of a system from the config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="run config (YAML)")
    parser.add_argument("--hamiltonian", required=True, help="Hamiltonian folder (norb and nelec from meta.json)")
    parser.add_argument("--out", required=True, help="checkpoint to write (model.pt)")
    parser.add_argument("--system", help="system name (needed when the config has several)")


def run(args: argparse.Namespace) -> int:
    from hinqs.config import get_system, load_config
    from hinqs.errors import InputError
    from hinqs.hamiltonian import active_shape, read_meta
    from hinqs.nqs.checkpoint import init_checkpoint, save_checkpoint
    from hinqs.nqs.settings import nqs_settings

    config = load_config(args.config)
    system = get_system(config, args.system)["name"]
    meta = read_meta(args.hamiltonian)
    norb, nelec = active_shape(meta, args.hamiltonian)
    try:
        state = init_checkpoint(norb, nelec, nqs_settings(config), seed=int(config["seed"]), system=system)
    except ValueError as exc:
        raise InputError(f"cannot build the model: {exc}") from None
    save_checkpoint(state, args.out)
    n_params = sum(p.numel() for p in state.model.parameters())
    cfg = state.config
    print(
        f"hinqs init-model: {system}: norb={norb} nelec={nelec} d_model={cfg.d_model} "
        f"n_layers={cfg.n_layers} n_heads={cfg.n_heads} ({n_params} parameters) -> {args.out}"
    )
    return 0
