"""Grow the cumulative determinant subspace: previous subspace + this iteration's samples + HF.

The config's ``subspace`` options apply (see :mod:`hinqs.subspace.expansion`), their ``null`` values
derived from the system's size (:mod:`hinqs.loop.defaults`): PT2-ranked single/double string
excitations of the teacher (``--teacher``, the previous iteration's ``sqd/state.npz``; the HF
determinant at the first iteration) join the subspace, and ``subspace.max_strings`` keeps the
strings of largest importance. ``--stats`` records what was added and evicted.
"""

from __future__ import annotations

import argparse

from hinqs.cli._options import add_config, load_settings

COMMAND = "subspace"
RENAMED = {"--previous": "--previous-subspace"}
HELP = "merge sampled determinants into the cumulative determinant subspace (subspace.npz)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, purpose="its `subspace` section (expansion and cap)")
    parser.add_argument("--hamiltonian", required=True, help="Hamiltonian folder (for norb and nelec)")
    parser.add_argument("--samples", required=True, help="samples.npz of this iteration")
    parser.add_argument("--previous-subspace", help="subspace.npz of the previous iteration (none at the first)")
    parser.add_argument("--teacher", help="sqd/state.npz of the previous iteration (for expansion and cap)")
    parser.add_argument("--previous-status", help="status.json of the previous iteration: the string cap it set")
    parser.add_argument("--out", required=True, help="subspace.npz to write")
    parser.add_argument("--stats", help="JSON file: what expansion added and the caps evicted")


def run(args: argparse.Namespace) -> int:
    from hinqs.steps.subspace import build_subspace

    settings = load_settings(args.config, args.hamiltonian)
    report = build_subspace(
        settings.subspace,
        args.hamiltonian,
        args.samples,
        args.out,
        previous=args.previous_subspace,
        teacher=args.teacher,
        stats=args.stats,
        previous_status=args.previous_status,
    )
    print(f"hinqs subspace: {report.line()}")
    return 0
