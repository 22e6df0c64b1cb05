"""Tables for spreadsheets: a system's energies.csv and a scan's scan.csv."""

from __future__ import annotations

import csv
import io
from typing import Any

from hinqs.summary.aggregate import MHA, STAGES

CSV_COLUMNS = [
    "iteration",
    "energy",
    "best_energy_so_far",
    "error_fci_mha",
    "new_determinants",
    "subspace_size",
    "subspace_dimension",
    "e_pt2",
    "e_pt2_error",
    "e_var_plus_pt2",
    "batches_ok",
    "batches_failed",
    *(f"seconds_{stage}" for stage in STAGES),
]


def energies_csv(summary: dict[str, Any]) -> str:
    """One row per iteration, for spreadsheets and quick plots."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    fci = summary["references"].get("fci")
    for r in summary["per_iteration"]:
        writer.writerow(
            {
                "iteration": r["iteration"],
                "energy": repr(r["energy"]),
                "best_energy_so_far": repr(r["best_energy_so_far"]),
                "error_fci_mha": "" if fci is None or r["energy"] is None else f"{(r['energy'] - fci) * MHA:.6f}",
                "new_determinants": r["new_determinants"],
                "subspace_size": r["subspace_size"],
                "subspace_dimension": r["subspace_dimension"],
                "e_pt2": "" if r.get("e_pt2") is None else repr(r["e_pt2"]),
                "e_pt2_error": "" if r.get("e_pt2_error") is None else repr(r["e_pt2_error"]),
                "e_var_plus_pt2": "" if r.get("e_var_plus_pt2") is None else repr(r["e_var_plus_pt2"]),
                "batches_ok": r["batches_ok"],
                "batches_failed": r["batches_failed"],
                **{f"seconds_{k}": "" if v is None else f"{v:.2f}" for k, v in r["seconds"].items()},
            }
        )
    return out.getvalue()


def scan_csv(summaries: list[dict[str, Any]], coordinates: list[float]) -> str:
    """One row per system of a scan: its coordinate, best energy, references and error against FCI."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["system", "coordinate", "energy", "hf", "ccsd", "ccsd_t", "fci", "error_fci_mha", "converged"])
    for x, s in zip(coordinates, summaries, strict=True):
        r = s["references"]
        writer.writerow(
            [
                s["system"],
                x,
                repr(s["best_energy"]),
                r["hf"],
                r["ccsd"],
                r["ccsd_t"],
                r["fci"],
                s["error_mha"].get("fci", ""),
                s["converged"],
            ]
        )
    return out.getvalue()
