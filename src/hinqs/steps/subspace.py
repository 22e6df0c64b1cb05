"""Step: grow the cumulative determinant subspace -> subspace.npz (+ what changed, as JSON).

Reads the previous subspace, this iteration's samples and the previous ground state, calls
:func:`hinqs.subspace.build.build_subspace` and writes the result.
"""

from __future__ import annotations

import os
from dataclasses import replace

from hinqs.io.atomic import write_json
from hinqs.io.files import read_determinants, read_state, write_determinants
from hinqs.io.hamiltonian import active_shape, load_hamiltonian, read_meta, reference_strings
from hinqs.subspace.build import SubspaceReport
from hinqs.subspace.build import build_subspace as build
from hinqs.subspace.settings import SubspaceSettings


def build_subspace(
    settings: SubspaceSettings,
    hamiltonian: str | os.PathLike[str],
    samples: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    previous: str | os.PathLike[str] | None = None,
    teacher: str | os.PathLike[str] | None = None,
    stats: str | os.PathLike[str] | None = None,
    previous_status: str | os.PathLike[str] | None = None,
) -> SubspaceReport:
    """Write iteration k's subspace from k-1's (``previous``), k's samples and k-1's ground state.

    ``previous_status`` (k-1's status.json) carries the string cap iteration k is built under
    when the loop grew it (:mod:`hinqs.loop.growth`); without one the settings' cap stands."""
    from hinqs.loop.convergence import read_status

    meta = read_meta(hamiltonian)
    norb, nelec = shape = active_shape(meta, hamiltonian)
    grown = False
    if previous_status:
        status = read_status(previous_status)
        if status.next_strings_cap is not None:
            grown = status.next_strings_cap != status.strings_cap
            settings = replace(settings, max_strings=status.next_strings_cap)
    before = read_determinants(previous, "previous subspace") if previous else None
    drawn = read_determinants(samples, "samples file")
    state = read_state(teacher, sort=True, norb=norb, nelec=nelec) if teacher else None
    references = reference_strings(meta, hamiltonian)
    subspace, report = build(
        settings,
        shape,
        drawn,
        before,
        state,
        lambda: load_hamiltonian(hamiltonian),
        references=references,
        fill=grown,
    )
    if stats:  # side file first: see hinqs.io.atomic
        write_json(stats, report.stats)
    write_determinants(out, subspace)
    return report
