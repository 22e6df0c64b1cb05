"""The per-iteration table of a finished run: energies with the PT2 error bar, sizes, Davidson
work, seconds and peak memory per stage.

    python benchmarks/n2_ccpvdz/table.py results_derived/n2_ccpvdz

reads what the run wrote (summary.json, each iteration's sqd/result.json and pt2.json, the
step logs and Snakemake's benchmark files) and prints a markdown table; errors are against
the summary's best reference (the config's `reference:` when given). Davidson cycles (one H|c>
product each, one root) come from PySCF's "converged <cycles> <space>" log line of the best
batch (the `lean` and `direct` solvers log it; `solve_fermion` does not).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

MHA = 1000.0
STAGES = ("sample", "subspace", "diagonalize", "pt2", "train")


def _benchmark(root: Path, stage: str, k: int) -> tuple[float | None, float | None]:
    """Wall seconds and peak RSS (MB) of one step from Snakemake's benchmark file."""
    path = root / "benchmarks" / f"{stage}_{k:03d}.tsv"
    if not path.exists():
        return None, None
    with open(path) as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return float(row["s"]), float(row["max_rss"]) if row["max_rss"] not in ("", "NA", "-") else None


def _davidson(root: Path, k: int) -> str:
    log = root / "logs" / f"diagonalize_{k:03d}.log"
    text = log.read_text() if log.exists() else ""
    found = re.findall(r"^converged (\d+) \d+", text, re.M)  # PySCF's line (lean)
    found = found or re.findall(r"^davidson converged=\w+ after (\d+) cycles", text, re.M)  # direct
    if not found:  # direct before it printed that line: its last progress line, cycles counted from 0
        found = [str(int(n) + 1) for n in re.findall(r"^davidson cycle (\d+):", text, re.M)]
    return found[-1] if found else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system_dir", type=Path, help="results/<system> of a finished run")
    root = parser.parse_args().system_dir
    summary = json.loads((root / "summary.json").read_text())
    ref = summary["best_reference"]
    print(f"{summary['system']}: errors in mHa against {ref['name']} ({ref['energy']})\n")
    print(
        "| it. | E_var - ref | E_PT2 (+- s.e.) | E_var + E_PT2 - ref | strings per spin | determinants "
        "| Davidson cycles | " + " | ".join(f"{s} s (MB)" for s in STAGES) + " |"
    )
    print("|" + "---|" * (7 + len(STAGES)))
    for r in summary["per_iteration"]:
        k = r["iteration"]
        pt2 = (
            json.loads((root / f"iter_{k:03d}" / "pt2.json").read_text())
            if (root / f"iter_{k:03d}" / "pt2.json").exists()
            else {}
        )
        e_pt2 = pt2.get("e_pt2")
        bar = pt2.get("e_pt2_error")
        pt2_text = "" if e_pt2 is None else f"{e_pt2 * MHA:.3f}" + (f" +- {bar * MHA:.3f}" if bar else "")
        total = "" if e_pt2 is None else f"{(r['energy'] + e_pt2 - ref['energy']) * MHA:+.3f}"
        shape = r.get("product_shape") or ["", ""]
        stages = []
        for stage in STAGES:
            seconds, rss = _benchmark(root, stage, k)
            stages.append("" if seconds is None else f"{seconds:.0f} ({rss:.0f})" if rss else f"{seconds:.0f}")
        print(
            f"| {k} | {(r['energy'] - ref['energy']) * MHA:+.3f} | {pt2_text} | {total} | {shape[0]} x {shape[1]} "
            f"| {r.get('subspace_dimension') or 0:,} | {_davidson(root, k)} | " + " | ".join(stages) + " |"
        )
    fit = (summary.get("pt2") or {}).get("extrapolated")
    if fit:
        bar = f" +- {fit['uncertainty'] * MHA:.3f} ({fit['basis']})" if fit.get("uncertainty") is not None else ""
        print(f"\nextrapolated (E_var against E_PT2, {fit['points']} points in the best iteration's orbitals): "
              f"{fit['energy']:.6f} Ha, {fit['error_mha']:+.3f}{bar} mHa")  # fmt: skip


if __name__ == "__main__":
    main()
