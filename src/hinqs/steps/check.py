"""Step: whether the loop stops after this iteration -> status.json."""

from __future__ import annotations

import os

from hinqs.io.files import read_result
from hinqs.loop.convergence import Status, next_status, read_status, write_status
from hinqs.loop.settings import IterationSettings


def check(
    settings: IterationSettings,
    iteration: int,
    result: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    previous_status: str | os.PathLike[str] | None = None,
) -> Status:
    """Decide from this iteration's merged energy and the previous status; write ``out``."""
    previous = read_status(previous_status) if previous_status else None
    energy = read_result(result).energy
    status = next_status(
        previous, iteration, energy, tol=settings.tol, window=settings.window, max_iterations=settings.max
    )
    write_status(out, status)
    return status
