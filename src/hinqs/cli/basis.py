"""Grow the cumulative basis: previous basis + this iteration's samples + HF, then expand and cap.

With ``--config`` the ``basis`` section applies (see :mod:`hinqs.expansion`), its ``null``
values derived from the system's size (:mod:`hinqs.defaults`): PT2-ranked single/double
string excitations of the teacher (``--teacher``, the previous iteration's
``sqd/state.npz``; the HF determinant at the first iteration) join the basis, and
``basis.max_strings`` keeps the strings of largest importance (a teacher string's cost if
dropped against a candidate's PT2 gain). ``--stats`` records what was added and evicted.
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
    parser.add_argument("--stats", help="JSON file for what expansion added and the cap evicted")
    parser.add_argument("--out", required=True, help="basis.npz to write")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from hinqs.atomic import write_json
    from hinqs.basis import grow_basis, load_determinants, save_determinants
    from hinqs.hamiltonian import active_shape, read_meta

    meta = read_meta(args.hamiltonian)
    norb, nelec = active_shape(meta, args.hamiltonian)
    previous = load_determinants(args.previous) if args.previous else None
    samples = load_determinants(args.samples)
    basis = grow_basis(previous, samples, norb, nelec)
    stats: dict[str, object] = {"n_grown": len(basis)}
    extra = ""
    if args.config:
        from hinqs.config import load_config
        from hinqs.defaults import resolve_config
        from hinqs.expansion import (
            ExpansionSettings,
            apply_plan,
            cap_basis,
            hartree_fock_teacher,
            load_teacher,
            plan_strings,
        )

        config = resolve_config(load_config(args.config), norb, nelec)
        settings = ExpansionSettings.from_config(config)
        max_strings = int(config["basis"].get("max_strings") or 0)
        max_size = int(config["basis"].get("max_size") or 0)
        teacher = load_teacher(args.teacher) if args.teacher else None
        added_a = added_b = None
        if settings.strings > 0 or max_strings > 0:
            from hinqs.hamiltonian import load_hamiltonian

            ham = load_hamiltonian(args.hamiltonian)
            source = teacher if teacher is not None else hartree_fock_teacher(norb, nelec)
            before = _strings(basis, nelec)
            plans = plan_strings(source, basis, ham.hcore, ham.eri, nelec, settings, max_strings)
            basis = apply_plan(basis, plans, norb, nelec)
            after = _strings(basis, nelec)
            added_a = np.concatenate([p.added for p in plans])
            sampled = _strings(samples, nelec)
            kept_sampled = np.intersect1d(np.setdiff1d(sampled, _strings(previous, nelec)), after)
            stats.update(
                expansion_strings=int(sum(len(p.added) for p in plans)),
                expansion_pt2=float(sum(p.pt2_added for p in plans)),
                candidates=int(sum(p.n_candidates for p in plans)),
                strings_before_cap=len(np.union1d(before, added_a)),
                strings=len(after),
                evicted_strings=len(np.setdiff1d(np.union1d(before, added_a), after)),
                new_sampled_strings_kept=len(np.setdiff1d(kept_sampled, added_a)),
            )
            extra += f", {stats['expansion_strings']} expansion strings, {stats['evicted_strings']} strings evicted"
            if len(plans) == 1:
                added_a, added_b = plans[0].added, plans[0].added_partner
            else:
                added_a = np.concatenate([plans[0].added, plans[1].added_partner])
                added_b = np.concatenate([plans[0].added_partner, plans[1].added])
        if max_size > 0:
            before_size = len(basis)
            basis = cap_basis(basis, max_size, norb, nelec, teacher, added_a, added_b)
            extra += f", {before_size - len(basis)} evicted"
    save_determinants(args.out, basis)
    stats["n_determinants"] = len(basis)
    if args.stats:
        write_json(args.stats, stats)
    grown = len(basis) - (len(previous) if previous else 0)
    print(f"hinqs basis: {len(basis)} determinants ({grown} new{extra})")
    return 0


def _strings(dets, nelec: tuple[int, int]):  # type: ignore[no-untyped-def]
    """Distinct strings of a determinant set (both spins pooled: what a closed-shell subspace spans)."""
    import numpy as np

    if dets is None:
        return np.zeros(0, np.uint64)
    return np.union1d(dets.alpha, dets.beta)
