"""Step: a system's active-space integrals and reference energies -> the Hamiltonian folder."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from hinqs.loop.settings import RunSettings

# The SCF of a molecule with degenerate orbitals (N2's pi pairs) rotates them differently at
# another thread count, and the references' last bits follow the thread count too. One
# thread makes the Hamiltonian folder a function of the config alone: the Snakemake rule,
# `hinqs prepare` typed by hand and the in-process driver write the same bits on any node.
PREPARE_THREADS = 1


def prepare(settings: RunSettings, system: str | None, out: str | os.PathLike[str]) -> Path:
    """Compute and write ``out/{hcore.npy, eri.npy, meta.json}`` (the folder appears complete)."""
    from hinqs.chem.prepare import prepare_system
    from hinqs.threads import thread_limit

    with thread_limit(PREPARE_THREADS):
        return prepare_system(settings.system(system), asdict(settings.references), out)
