"""Step: batches of the subspace diagonalised in parallel and merged -> sqd/{result.json, state.npz}."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from hinqs.io.files import StepResult, read_determinants
from hinqs.sqd.settings import SQDSettings

if TYPE_CHECKING:
    from hinqs.sqd.executors import BatchExecutor


def diagonalize(
    hamiltonian: str | os.PathLike[str],
    subspace: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: SQDSettings,
    *,
    executor: BatchExecutor | None = None,
    teacher: str | os.PathLike[str] | None = None,
) -> StepResult:
    """Draw ``settings.n_batches`` batches from the subspace file ``subspace`` and solve them.

    ``executor`` (e.g. a process pool kept open across iterations by the driver) replaces
    the one ``settings.parallel`` names; results do not depend on which one runs them.
    ``teacher`` (the previous ground state) ranks strings when a batch must be capped.
    """
    from hinqs.sqd.step import run_diagonalization

    dets = read_determinants(subspace, "subspace")
    return run_diagonalization(hamiltonian, dets.alpha, dets.beta, dets.counts, out, settings, executor=executor,
                               teacher=teacher)  # fmt: skip
