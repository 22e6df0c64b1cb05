"""Steps after the loop: a system's summary, and the scan over several systems."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hinqs.loop.settings import RunSettings


def summarize(
    system_dir: str | os.PathLike[str], n_iterations: int, user_reference: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write summary.json, energies.csv and convergence.png from the iteration files."""
    from hinqs.summary import write_summary

    return write_summary(system_dir, n_iterations, user_reference)


def scan(
    settings: RunSettings,
    summaries: list[str | os.PathLike[str]],
    csv: str | os.PathLike[str],
    png: str | os.PathLike[str],
) -> None:
    """Tabulate and plot the systems' best energies against their references (config order)."""
    from hinqs.errors import InputError
    from hinqs.summary import read_summary, write_scan

    if len(summaries) != len(settings.systems):
        count = f"{len(summaries)} summaries for {len(settings.systems)} systems"
        raise InputError(f"{count}: give one summary.json per system, in config order")
    data = [read_summary(p) for p in summaries]  # all read and checked before anything is written
    coordinates = [float(s.get("coordinate", i)) for i, s in enumerate(settings.systems)]
    write_scan(data, coordinates, Path(csv), Path(png))
