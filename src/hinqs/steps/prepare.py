"""Step: a system's active-space integrals and reference energies -> the Hamiltonian folder."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from hinqs.settings import RunSettings


def prepare(settings: RunSettings, system: str | None, out: str | os.PathLike[str]) -> Path:
    """Compute and write ``out/{hcore.npy, eri.npy, meta.json}`` (the folder appears complete)."""
    from hinqs.chem.prepare import prepare_system

    return prepare_system(settings.system(system), asdict(settings.references), out)
