"""Step: the EN-PT2 correction of an iteration's variational state -> pt2.json."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hinqs.subspace.settings import PT2Settings

if TYPE_CHECKING:
    from hinqs.io.files import GroundState


def estimate_pt2(
    settings: PT2Settings,
    threads: int,
    hamiltonian: str | os.PathLike[str],
    state: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    seed: int,
    iteration: int,
    comm: Any | None = None,
) -> dict[str, Any]:
    """Read the state and the integrals, sum the correction on ``threads`` threads, write ``out``.

    A state of another system, or with non-finite numbers, is refused in one line before
    anything is computed or written.

    A sampled correction draws from the named stream ``("pt2", iteration)`` of ``seed``.
    With ``comm`` (an MPI communicator) every rank runs this on ``threads`` threads of its own
    and computes a share of the rows (:mod:`hinqs.subspace.pt2_ranks`, the same bits as one
    process); rank 0 alone reports and writes."""
    from hinqs.io.atomic import write_json
    from hinqs.io.hamiltonian import load_hamiltonian
    from hinqs.seeding import numpy_stream
    from hinqs.sqd.device_check import resolve_device
    from hinqs.subspace.pt2 import en_pt2
    from hinqs.subspace.pt2_ranks import RowDeal
    from hinqs.threads import thread_limit

    deal = RowDeal(comm)
    report = (lambda line: print(line, flush=True)) if deal.leader else None

    record: dict[str, Any] = {"max_dimension": settings.max_dimension, "iteration": iteration}
    ham = load_hamiltonian(hamiltonian)
    ground = checked_state(state, ham.norb, tuple(ham.nelec))  # also when skipped: no record for a foreign state
    if settings.max_dimension > 0:
        device = resolve_device(settings.device)  # None for cpu (torch not imported): the numba rows
        with thread_limit(threads, load_pyscf=False):  # hinqs' kernel only
            estimate = en_pt2(ham.hcore, ham.eri, ham.ecore, tuple(ham.nelec), ground.strs_a, ground.strs_b,
                              ground.amplitudes, settings.max_dimension, relative_error=settings.relative_error,
                              rng=numpy_stream(seed, "pt2", iteration),
                              report=report, energy=ground.energy, deal=deal, device=device)  # fmt: skip
        record.update(estimate.as_dict(), ranks=deal.size)
        if estimate.intruders and deal.leader:
            print(f"pt2: {estimate.intruders:,} connected determinants lie below E_var: left out of E_PT2 "
                  f"(their terms would change sign); the subspace misses them, so the check calls nothing "
                  f"accurate", flush=True)  # fmt: skip
    else:
        record["skipped"] = "pt2.max_dimension is 0"
    if deal.leader:
        write_json(out, record)
    return record


def checked_state(path: str | os.PathLike[str], norb: int, nelec: tuple[int, int]) -> GroundState:
    """The state, refused in one line unless it belongs to the Hamiltonian's system and holds
    finite numbers: a foreign state would otherwise reach PySCF (a traceback, or a number
    for the wrong molecule)."""
    import math

    import numpy as np

    from hinqs.errors import InputError
    from hinqs.io.files import read_state

    ground = read_state(path, norb=norb, nelec=nelec)
    if not np.all(np.isfinite(ground.amplitudes)) or not np.any(ground.amplitudes):
        raise InputError(f"{path}: the amplitudes are not finite or all zero")
    if ground.energy is not None and not math.isfinite(ground.energy):
        raise InputError(f"{path}: the state's energy is {ground.energy!r}")
    return ground
