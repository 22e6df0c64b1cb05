"""``sqd.device``: which kernel a worker runs, and the step's GPU check before any solve starts.

:func:`resolve_device` turns the setting into a torch device, or ``None`` for the numba
kernel, importing torch only when the setting is not ``cpu``.

With ``sqd.device: cuda`` the direct solver runs each batch on the worker's GPU; a batch
whose tables and work (:func:`hinqs.kernel.device_memory.device_need`) do not fit would only
fail there, after the pool has started. The parent therefore refuses it first, in one line
(:class:`hinqs.errors.InputError`, exit 2), the way :func:`hinqs.sqd.dimension.check_fits`
refuses a batch that does not fit the host's memory. The process workers of a node share its
GPU, so each gets ``1 / parallel.workers`` of the free memory; the ranks of a batch spread
over them (``parallel.executor: distributed``) each have a GPU and hold a block of its rows.

The free memory is asked of a short-lived Python process: the parent never imports torch
and never holds a CUDA context of its own (it would take GPU memory from the workers for the
whole step), and it imports :mod:`hinqs.kernel` only for a ``cuda`` step. With ``auto``
nothing is checked here (the parent does not know whether a worker sees a GPU); the worker
checks its batch against its own device before solving
(:func:`hinqs.sqd.solvers.solve_direct`), which is the check an MPI rank on another node
gets too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from hinqs.errors import InputError
from hinqs.sqd.registry import DEVICES, TORCH_CPU

_FREE_MB = (
    "import sys, torch\n"
    "if not torch.cuda.is_available(): print(-1)\n"
    "else: print(torch.cuda.mem_get_info(torch.device(sys.argv[1]))[0] / 2**20)\n"
)


# Where a launcher says which of its node's ranks a process is: Open MPI, MPICH and Intel MPI, srun.
NODE_RANK_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID")


def node_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's place among the ranks on its node, from the launcher's variables; 0 outside
    a launcher (and in process workers, which drop its variables: they share one GPU)."""
    environ = os.environ if environ is None else environ
    for name in NODE_RANK_VARIABLES:
        value = environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def resolve_device(name: str, rank_on_node: int | None = None) -> Any:
    """``sqd.device`` -> the ``torch.device`` to solve on, or ``None`` for the numba kernel.

    ``auto``: CUDA when torch sees a GPU, else ``None``; ``cuda``/``cuda:N`` without a GPU is
    an input error; :data:`hinqs.sqd.registry.TORCH_CPU` is torch on the CPU. A plain ``cuda``
    (or ``auto``) gives the ranks of a node its GPUs in turn: GPU ``rank_on_node`` (else
    :func:`node_rank`) modulo the GPUs this process sees, so MPI ranks asked one GPU each
    (:func:`hinqs.loop.workflow_support.gpus_per_diagonalize_job`) do not all land on the
    first; a launcher that binds one GPU to each task leaves each rank its own as ``cuda:0``.
    ``cuda:N`` is taken as given.
    """
    if name == "cpu":
        return None
    import torch

    if name == TORCH_CPU:
        return torch.device("cpu")
    if name == "auto" and not torch.cuda.is_available():
        return None
    if name in ("auto", "cuda") or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"sqd.device {name!r} asked for but torch sees no CUDA GPU (use 'auto' or 'cpu')")
        if name.startswith("cuda:"):
            return torch.device(name)
        place = node_rank() if rank_on_node is None else rank_on_node
        return torch.device("cuda", place % torch.cuda.device_count())
    raise InputError(f"unknown sqd.device {name!r} (choose from {', '.join(DEVICES)})")


def gpu_free_mb(device: str) -> float:
    """Free memory (MB) of the CUDA device ``device`` names, from a process of its own."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _FREE_MB, device], capture_output=True, text=True, timeout=120, check=False
        )
        free = float(done.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        raise InputError(f"sqd.device {device!r}: could not read the GPU's free memory") from None
    if free < 0:
        raise InputError(f"sqd.device {device!r} asked for but torch sees no CUDA GPU (use 'auto' or 'cpu')")
    return free


def check_device_batches(
    batches: list[Any],
    norb: int,
    nelec: tuple[int, int],
    free_mb: float,
    device: str,
    workers: int,
    source: str,
    spread: bool = False,
) -> None:
    """One-line :class:`InputError` for the first batch whose device need exceeds a worker's share of ``free_mb``.

    ``spread`` (``parallel.executor: distributed``): every batch's rows split over ``workers``
    ranks, each with a GPU of its own; a rank's need is its rows' (the largest even share) with
    a halo of every other row, the bound for subspaces of singles and doubles.
    """
    from hinqs.kernel.device_memory import WORK_MB, check_device_fits, device_need  # numba's import: cuda steps only

    ranks = max(1, workers)
    share = free_mb if spread else free_mb / ranks
    where = f"{source}, shared by {workers} worker(s)" if workers > 1 and not spread else source
    for batch in batches:
        rows = (-(-batch.shape[0] // ranks), batch.shape[1]) if spread else batch.shape
        need = device_need(batch.shape, rows, norb, nelec, WORK_MB["cuda"])
        try:
            check_device_fits(batch.shape, need, share, device, where)
        except InputError as exc:
            raise InputError(f"batch {batch.index}: {exc}") from None


def check_step_device(
    batches: list[Any], solver: Any, norb: int, nelec: tuple[int, int], workers: int, spread: bool = False
) -> None:
    """The check for a step's settings: only ``direct`` with an explicit ``cuda``/``cuda:N`` device
    (``spread``: each batch over ``workers`` ranks, a GPU each, :func:`check_device_batches`)."""
    device = solver.device
    if solver.solver != "direct" or not device.startswith("cuda"):
        return
    free = gpu_free_mb(device)
    check_device_batches(batches, norb, nelec, free, device, workers, "torch.cuda.mem_get_info", spread)
