"""Where the model runs, and the switches that make it run the same way every time.

``auto`` picks CUDA when torch sees a GPU, else the CPU; every other line of the NQS code is
the same on both (tensors follow ``model.device``; random draws for sampling are made on the
host with NumPy, so they do not depend on the device at all).

Determinism:

- CPU: with a fixed seed and a fixed thread count, sampling and training are bit-identical
  run to run (checked by the tests). Float reductions may split differently with another
  thread count, so keep ``torch.set_num_threads`` fixed when comparing runs.
- CUDA: :func:`configure_determinism` (a no-op on the CPU) sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS
  needs it for reproducible GEMMs), turns TF32 off and calls
  ``torch.use_deterministic_algorithms(True)``. The model avoids the CUDA ops that have no
  deterministic kernel: no ``nn.Embedding`` (its backward is an atomic index-accumulate;
  a one-hot matmul is used instead), no fused ``scaled_dot_product_attention`` (its
  flash / memory-efficient backward kernels are non-deterministic; attention is written
  out), no ``gather`` in the loss (its backward is ``scatter_add``; a ``where`` + sum is
  used). What remains (matmul, softmax, layer norm, elementwise, ``index_select`` forward,
  integer ``cumsum``) is deterministic under these settings. CPU and CUDA results agree
  only to float rounding, not bit for bit.
"""

from __future__ import annotations

import os

import torch

from hinqs.errors import InputError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto|cpu|cuda`` (or ``cuda:N``) -> a torch device; asking for CUDA without a GPU is an input error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} requested but torch sees no CUDA GPU (use 'auto' or 'cpu')")
        return torch.device(name)
    raise InputError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")


def configure_determinism(device: torch.device) -> None:
    """Make torch pick deterministic kernels on CUDA (call before the first CUDA operation).

    The environment variable must be set before cuBLAS initialises, which is why command
    lines call this right after choosing the device, before the model moves there. On the
    CPU it does nothing: every CPU kernel the model uses is deterministic already, and
    ``torch.use_deterministic_algorithms`` costs over a second of imports (torch._inductor).
    """
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
