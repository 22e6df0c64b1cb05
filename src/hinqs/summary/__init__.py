"""Per-system results: summary.json, energies.csv and the convergence plot; the scan table.

Split by job: :mod:`~hinqs.summary.aggregate` builds summary.json's content from the files the
steps wrote (and reads one back), :mod:`~hinqs.summary.table` writes the CSV tables, :mod:`~hinqs.summary.plot` the
figures, :mod:`~hinqs.summary.text` the result lines; this module writes a system's or a scan's
files from them. Everything is read back from disk, so a summary can be rebuilt at any time
(and by ``snakemake --report``) without rerunning anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hinqs.io.atomic import write_json, write_text
from hinqs.io.layout import SystemLayout
from hinqs.summary.aggregate import (
    CHEMICAL_ACCURACY_MHA,
    DISTINCT_HA,
    MHA,
    STAGES,
    build_summary,
    iteration_record,
    read_summary,
)
from hinqs.summary.plot import plot_convergence, plot_scan
from hinqs.summary.table import CSV_COLUMNS, energies_csv, scan_csv
from hinqs.summary.text import result_line, result_lines

__all__ = [
    "CHEMICAL_ACCURACY_MHA",
    "CSV_COLUMNS",
    "DISTINCT_HA",
    "MHA",
    "STAGES",
    "build_summary",
    "energies_csv",
    "iteration_record",
    "plot_convergence",
    "plot_scan",
    "read_summary",
    "result_line",
    "result_lines",
    "scan_csv",
    "write_scan",
    "write_summary",
]


def write_summary(
    system_dir: str | os.PathLike[str], n_iterations: int, user_reference: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write summary.json, energies.csv and convergence.png into the system folder."""
    system = SystemLayout(Path(system_dir))
    summary = build_summary(system.root, n_iterations, user_reference)
    write_text(system.energies_csv, energies_csv(summary))
    plot_convergence(summary, system.convergence_png)
    write_json(system.summary, summary)
    return summary


def write_scan(summaries: list[dict[str, Any]], coordinates: list[float], csv_path: Path, png_path: Path) -> None:
    """Potential-energy curve of several systems against their references: scan.csv and scan.png."""
    write_text(csv_path, scan_csv(summaries, coordinates))
    plot_scan(summaries, coordinates, png_path)
