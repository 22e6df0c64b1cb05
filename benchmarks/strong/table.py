"""The strong-correlation benchmark's table, from the results folders of its runs.

Each run is the command a user types, from the repository root:

    snakemake --cores 2 --configfile benchmarks/strong/h12_chain_sto3g.yaml --config results_dir=results/h12

and this script reads what the runs wrote (summary.json, the per-iteration status and the
step benchmarks) and prints one Markdown row per system:

    python benchmarks/strong/table.py results/h12 results/h8ring ...

E_var and E_var + E_PT2 are given against the best reference the run holds (FCI from prepare,
or the config's ``reference:``), in mHa, with the 95 % half-width of a sampled PT2; "interval"
is where the run says the exact energy lies (E_var + 2 E_PT2 .. E_var); "wall" is the sum of
the step benchmarks (Snakemake's, per job), prepare included.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MHA = 1000.0


def _mha(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def row(summary_path: Path) -> str:
    """One table row from a system's summary.json."""
    s = json.loads(summary_path.read_text())
    ref = s["best_reference"]
    e_ref = ref.get("energy")
    pt2 = s.get("pt2") or {}
    best = next(r for r in s["per_iteration"] if r["iteration"] == s["best_iteration"])
    caps = []
    for k in range(1, s["iterations"] + 1):
        status = json.loads((summary_path.parent / f"iter_{k:03d}" / "status.json").read_text())
        caps.append(status.get("strings_cap") or 0)
    growth = " -> ".join(str(c) for i, c in enumerate(caps) if i == 0 or c != caps[i - 1])
    e_var = None if e_ref is None else (s["best_energy"] - e_ref) * MHA
    e_tot = pt2.get("error_mha")
    half = pt2.get("e_pt2_ci95")
    bar = f" +- {half * MHA:.3f}" if half else ""
    interval = pt2.get("interval")
    holds = "-" if not interval or e_ref is None else ("yes" if interval[0] <= e_ref <= interval[1] else "NO")
    fit = pt2.get("extrapolated") or {}
    extrapolated = "-"
    if fit.get("error_mha") is not None:
        extrapolated = f"{fit['error_mha']:+.3f} +- {(fit.get('uncertainty') or 0) * MHA:.3f}"
    wall = sum(v for v in (s.get("seconds_per_stage") or {}).values() if v)
    stop = s.get("stop_reason") or "-"
    dims = best.get("subspace_dimension") or 0
    share = f" ({100 * dims / s['fci_space']:.2g} %)" if s.get("fci_space") else ""
    return (
        f"| {s['system']} | {s['norb']} | {ref.get('name')} | {_mha(e_var)} | {_mha(e_tot)}{bar} | {holds} | "
        f"{extrapolated} | {dims:,}{share} | {growth} | {s['iterations']} | {wall / 60:.1f} | {stop} |"
    )


HEADER = (
    "| system | orbitals | reference | E_var (mHa) | E_var + E_PT2 (mHa, 95 %) | interval holds it "
    "| extrapolated (mHa) | determinants | strings per spin (cap) | iterations | steps (min) | stop |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="results folders (each with <system>/summary.json)")
    args = parser.parse_args()
    print(HEADER)
    for folder in args.results:
        for summary in sorted(Path(folder).glob("*/summary.json")):
            print(row(summary))


if __name__ == "__main__":
    main()
