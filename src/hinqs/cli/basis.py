"""Grow the cumulative determinant basis: previous basis + this iteration's samples + HF.

With ``--config`` and ``--teacher`` (the previous iteration's ``sqd/state.npz``), the
accuracy options of ``basis`` in the config apply (see :mod:`hinqs.expansion`): PT2-ranked
single/double string excitations of the teacher's top strings join the basis, and
``basis.max_size`` caps it. Both are off by default.
"""

from __future__ import annotations

import argparse

COMMAND = "basis"
HELP = "merge sampled determinants into the cumulative basis (basis.npz)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hamiltonian", required=True, help="Hamiltonian folder (for norb and nelec)")
    parser.add_argument("--samples", required=True, help="samples.npz of this iteration")
    parser.add_argument("--previous", help="basis.npz of the previous iteration (none at the first)")
    parser.add_argument("--config", help="run config (its `basis` section: expansion and cap)")
    parser.add_argument("--teacher", help="sqd/state.npz of the previous iteration (for expansion and cap)")
    parser.add_argument("--out", required=True, help="basis.npz to write")


def run(args: argparse.Namespace) -> int:
    from hinqs.basis import grow_basis, load_determinants, save_determinants
    from hinqs.hamiltonian import active_shape, read_meta

    meta = read_meta(args.hamiltonian)
    norb, nelec = active_shape(meta, args.hamiltonian)
    previous = load_determinants(args.previous) if args.previous else None
    basis = grow_basis(previous, load_determinants(args.samples), norb, nelec)
    extra = ""
    if args.config:
        from hinqs.config import load_config
        from hinqs.expansion import (
            ExpansionSettings,
            cap_basis,
            expand_basis,
            hartree_fock_teacher,
            load_teacher,
            select_strings,
        )

        config = load_config(args.config)
        settings = ExpansionSettings.from_config(config)
        max_size = int(config.get("basis", {}).get("max_size", 0))
        teacher = load_teacher(args.teacher) if args.teacher and (settings.strings > 0 or max_size > 0) else None
        new_a = new_b = None
        if settings.strings > 0:
            from hinqs.hamiltonian import load_hamiltonian

            ham = load_hamiltonian(args.hamiltonian)
            source = teacher if teacher is not None else hartree_fock_teacher(norb, nelec)
            new_a, new_b = select_strings(source, ham.hcore, ham.eri, nelec, settings)
            basis = expand_basis(basis, new_a, new_b)
            extra += f", {len(new_a)} expansion determinants"
        if max_size > 0:
            before = len(basis)
            basis = cap_basis(basis, max_size, norb, nelec, teacher, new_a, new_b)
            extra += f", {before - len(basis)} evicted"
    save_determinants(args.out, basis)
    grown = len(basis) - (len(previous) if previous else 0)
    print(f"hinqs basis: {len(basis)} determinants ({grown} new{extra})")
    return 0
