"""Named random streams derived from the run seed.

Every random choice in a run draws from a stream named by what it is for, e.g.
``("batches", iteration, batch_index)``. The stream depends only on the run seed and the
name, never on the order in which streams are created or on which process creates them,
which is what makes the parallel path reproduce the sequential one bit for bit.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _name_words(name: tuple[str | int, ...]) -> list[int]:
    """Hash a stream name into 32-bit words for ``SeedSequence`` (stable across processes)."""
    text = "/".join(str(part) for part in name).encode()
    digest = hashlib.sha256(text).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def seed_sequence(seed: int, *name: str | int) -> np.random.SeedSequence:
    """The ``SeedSequence`` of stream ``name`` under run seed ``seed``."""
    if seed < 0:
        raise ValueError("seed must be non-negative")
    return np.random.SeedSequence([int(seed), *_name_words(name)])


def numpy_stream(seed: int, *name: str | int) -> np.random.Generator:
    """A NumPy generator for stream ``name`` (PCG64, independent of every other name)."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, *name)))


def int_seed(seed: int, *name: str | int) -> int:
    """A 63-bit integer seed for stream ``name``, for libraries that take one (torch)."""
    state = seed_sequence(seed, *name).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)
