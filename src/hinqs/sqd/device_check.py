"""``sqd.device``: which kernel a worker runs, and the step's GPU check before any solve starts.

:func:`resolve_device` turns the setting into a torch device, or ``None`` for the numba
kernel, importing torch only when the setting is not ``cpu``.

With ``sqd.device: cuda`` the direct solver runs each batch on the worker's GPU; a batch
whose tables and work (:func:`hinqs.kernel.device_memory.device_need`) do not fit would only
fail there, after the pool has started. The parent therefore refuses it first, in one line
(:class:`hinqs.errors.InputError`, exit 2), the way :func:`hinqs.sqd.dimension.check_fits`
refuses a batch that does not fit the host's memory. The process workers of a node share its
GPU, so each gets ``1 / parallel.workers`` of the free memory.

The free memory is asked of a short-lived Python process: the parent never imports torch
and never holds a CUDA context of its own (it would take GPU memory from the workers for the
whole step), and it imports :mod:`hinqs.kernel` only for a ``cuda`` step. With ``auto``
nothing is checked here (the parent does not know whether a worker sees a GPU); the worker
checks its batch against its own device before solving
(:func:`hinqs.sqd.solvers.solve_direct`), which is the check an MPI rank on another node
gets too.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from hinqs.errors import InputError
from hinqs.sqd.registry import DEVICES, TORCH_CPU

_FREE_MB = (
    "import sys, torch\n"
    "if not torch.cuda.is_available(): print(-1)\n"
    "else: print(torch.cuda.mem_get_info(torch.device(sys.argv[1]))[0] / 2**20)\n"
)


def resolve_device(name: str) -> Any:
    """``sqd.device`` -> the ``torch.device`` to solve on, or ``None`` for the numba kernel.

    ``auto``: CUDA when torch sees a GPU, else ``None``; ``cuda``/``cuda:N`` without a GPU is
    an input error; :data:`hinqs.sqd.registry.TORCH_CPU` is torch on the CPU.
    """
    if name == "cpu":
        return None
    import torch

    if name == TORCH_CPU:
        return torch.device("cpu")
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else None
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"sqd.device {name!r} asked for but torch sees no CUDA GPU (use 'auto' or 'cpu')")
        return torch.device(name)
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
    batches: list[Any], norb: int, nelec: tuple[int, int], free_mb: float, device: str, workers: int, source: str
) -> None:
    """One-line :class:`InputError` for the first batch whose device need exceeds a worker's share of ``free_mb``."""
    from hinqs.kernel.device_memory import WORK_MB, check_device_fits, device_need  # numba's import: cuda steps only

    share = free_mb / max(1, workers)
    where = f"{source}, shared by {workers} worker(s)" if workers > 1 else source
    for batch in batches:
        need = device_need(batch.shape, batch.shape, norb, nelec, WORK_MB["cuda"])
        try:
            check_device_fits(batch.shape, need, share, device, where)
        except InputError as exc:
            raise InputError(f"batch {batch.index}: {exc}") from None


def check_step_device(batches: list[Any], solver: Any, norb: int, nelec: tuple[int, int], workers: int) -> None:
    """The check for a step's settings: only ``direct`` with an explicit ``cuda``/``cuda:N`` device."""
    device = solver.device
    if solver.solver != "direct" or not device.startswith("cuda"):
        return
    check_device_batches(batches, norb, nelec, gpu_free_mb(device), device, workers, "torch.cuda.mem_get_info")
