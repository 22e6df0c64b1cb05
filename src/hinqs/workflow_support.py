"""What the Snakefile needs beyond Snakemake itself, kept here so it is tested.

- ``snapshot_config`` writes the validated config (defaults filled) where every rule's
  ``hinqs`` command reads it, and only when its content changed: rules name it as a
  parameter, not an input, and list the config sections they depend on as ``params``, so
  Snakemake's params trigger reruns exactly the steps whose settings changed.
- ``iterations_to_run`` walks the chain of checkpoint statuses until one says stop (where
  the files are is :mod:`hinqs.io.layout`'s business).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hinqs.convergence import read_status
from hinqs.defaults import MAX_AUTO_STRINGS
from hinqs.io.atomic import write_text


def snapshot_config(config: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as YAML at ``path`` unless the file already holds exactly that."""
    path = Path(path)
    text = yaml.safe_dump(config, sort_keys=True)
    if not path.exists() or path.read_text() != text:
        write_text(path, text)
    return path


def iterations_to_run(status_path_of: Callable[[int], str], max_iterations: int) -> int:
    """Number of iterations until a status says stop; ``status_path_of(k)`` may raise
    Snakemake's IncompleteCheckpointException when that status does not exist yet."""
    for k in range(1, max_iterations + 1):
        if read_status(status_path_of(k)).stop:
            return k
    return max_iterations


def diagonalize_launcher(parallel: dict[str, Any]) -> str:
    """The command that runs ``hinqs`` for the diagonalize (and verify) step.

    For ``executor: mpi`` the step runs under an MPI launcher with mpi4py.futures' server
    mode: rank 0 runs ``hinqs`` and dispatches batches, ranks 1..workers solve them.
    """
    if parallel["executor"] != "mpi":
        return "hinqs"
    ranks = int(parallel["workers"]) + 1
    launcher = parallel["mpi_launcher"].format(ranks=ranks)
    return f"{launcher} python -m mpi4py.futures -m hinqs"


def diagonalize_threads(parallel: dict[str, Any]) -> int:
    """Cores the diagonalize step occupies: workers x threads per worker (local executors)."""
    if parallel["executor"] == "sequential":
        return int(parallel["threads_per_worker"])
    return int(parallel["workers"]) * int(parallel["threads_per_worker"])


def diagonalize_mem_mb(sqd: dict[str, Any], parallel: dict[str, Any]) -> int:
    """Memory (MB) to ask the scheduler for one diagonalize step, from the step's own estimate.

    A batch of S determinants has at most 2S distinct strings per spin (closed shells merge
    both spins' strings), so its subspace holds at most (2S)^2 determinants, or
    ``sqd.max_dimension`` when that is set; each worker may solve one such batch at a time
    (:func:`hinqs.sqd.dimension.estimate_mb`), and the parent holds the pool and the merged
    state. The step, granted this as ``SLURM_MEM_PER_NODE``, then derives a cap that never
    cuts a batch the request was sized for.
    """
    from hinqs.sqd.dimension import PARENT_MB, USABLE_FRACTION, estimate_mb

    per_batch = sqd.get("samples_per_batch")
    # null: one batch of the whole subspace, at most the derived string cap squared (hinqs.defaults)
    largest = (2 * int(per_batch)) ** 2 if per_batch else MAX_AUTO_STRINGS**2
    if sqd.get("max_dimension"):
        largest = min(largest, int(sqd["max_dimension"]))
    workers = int(parallel["workers"])  # the step divides its memory among the configured workers
    need = PARENT_MB + workers * estimate_mb(largest, sqd.get("solver", "solve_fermion"))
    return int(need / USABLE_FRACTION + 0.5)
