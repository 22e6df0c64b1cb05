"""Prove a parallel run right: run the loop twice with one seed and compare everything.

Path A is the reference: batches one after another in-process, one thread. Path B is the
configured parallel path (process pool or MPI ranks). Iteration by iteration, in the order
the loop produces them, the comparison covers the sampled determinants, the basis, the
batch compositions, the per-batch and merged energies, the teacher state and the trained
model weights. With one thread per solve on both paths everything must be bit-identical;
with more threads PySCF's reductions run in a dynamic order, so energies may differ by up
to 1e-10 Ha (and amplitudes and weights correspondingly little). Discrete things — which
determinants, which batches — must always be identical.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.workflow_support import iteration_name

ENERGY_TOL = 1e-10
AMPLITUDE_TOL = 1e-8
WEIGHT_TOL = 1e-6


@dataclass
class Comparison:
    """One quantity of one iteration, compared between the two paths."""

    iteration: int
    quantity: str
    deviation: float
    tolerance: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.deviation <= self.tolerance)


def _array_deviation(a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    if a.shape != b.shape:
        return float("inf"), f"shapes {a.shape} and {b.shape}"
    if a.size == 0:
        return 0.0, ""
    if a.dtype.kind in "uib" or b.dtype.kind in "uib":
        different = int(np.count_nonzero(a != b))
        return (float("inf") if different else 0.0), (f"{different} entries differ" if different else "")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))), ""


def _npz_deviation(path_a: Path, path_b: Path, keys: list[str]) -> tuple[float, str]:
    worst, notes = 0.0, []
    with np.load(path_a) as a, np.load(path_b) as b:
        for key in keys:
            if key not in a or key not in b:
                continue
            dev, note = _array_deviation(np.asarray(a[key]), np.asarray(b[key]))
            worst = max(worst, dev)
            if note:
                notes.append(f"{key}: {note}")
    return worst, "; ".join(notes)


def _amplitude_deviation(path_a: Path, path_b: Path) -> tuple[float, str]:
    """Strings must match exactly; amplitudes up to a global sign (an eigenvector's sign is free)."""
    dev, note = _npz_deviation(path_a, path_b, ["ci_strs_a", "ci_strs_b"])
    if dev:
        return dev, note
    with np.load(path_a) as a, np.load(path_b) as b:
        amp_a, amp_b = np.asarray(a["amplitudes"]), np.asarray(b["amplitudes"])
    if amp_a.shape != amp_b.shape:
        return float("inf"), f"amplitude shapes {amp_a.shape} and {amp_b.shape}"
    sign = 1.0 if float(np.vdot(amp_a, amp_b)) >= 0 else -1.0
    return float(np.max(np.abs(amp_a - sign * amp_b))), ("opposite global sign" if sign < 0 else "")


def _weights_deviation(path_a: Path, path_b: Path) -> tuple[float, str]:
    import torch

    a = torch.load(path_a, map_location="cpu", weights_only=True)["model_state"]
    b = torch.load(path_b, map_location="cpu", weights_only=True)["model_state"]
    if a.keys() != b.keys():
        return float("inf"), "different parameter names"
    worst = max((float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel()), default=0.0)
    return worst, ""


def _batches(sqd_dir: Path) -> dict[int, dict[str, Any]]:
    return {b["index"]: b for b in json.loads((sqd_dir / "result.json").read_text())["batches"]}


def _batch_hashes(sqd_dir: Path) -> dict[int, str | None]:
    hashes = {}
    for path in sorted((sqd_dir / "batches").glob("batch_*.json")):
        record = json.loads(path.read_text())
        hashes[int(record["index"])] = record.get("content_hash")
    return hashes


def compare_runs(dir_a: Path, dir_b: Path, iterations: int, *, exact: bool) -> list[Comparison]:
    """Every comparison, in the order the loop produces the quantities."""
    e_tol = 0.0 if exact else ENERGY_TOL
    a_tol = 0.0 if exact else AMPLITUDE_TOL
    w_tol = 0.0 if exact else WEIGHT_TOL
    out: list[Comparison] = []
    for k in range(1, iterations + 1):
        ia, ib = dir_a / iteration_name(k), dir_b / iteration_name(k)
        dev, note = _npz_deviation(ia / "samples.npz", ib / "samples.npz", ["alpha", "beta", "counts", "log_prob"])
        out.append(Comparison(k, "sampled determinants", dev, 0.0, note))
        dev, note = _npz_deviation(ia / "basis.npz", ib / "basis.npz", ["alpha", "beta", "counts"])
        out.append(Comparison(k, "basis", dev, 0.0, note))
        ha, hb = _batch_hashes(ia / "sqd"), _batch_hashes(ib / "sqd")
        differing = sorted(i for i in set(ha) | set(hb) if ha.get(i) != hb.get(i))
        out.append(
            Comparison(k, "batch compositions", float(len(differing)), 0.0, f"batches {differing}" if differing else "")
        )
        ba, bb = _batches(ia / "sqd"), _batches(ib / "sqd")
        worst, notes = 0.0, []
        for index in sorted(set(ba) | set(bb)):
            ea, eb = ba.get(index, {}).get("energy"), bb.get(index, {}).get("energy")
            if ea is None or eb is None:
                if (ea is None) != (eb is None):
                    worst, notes = float("inf"), [*notes, f"batch {index} failed on one path only"]
                continue
            if abs(ea - eb) > worst:
                worst = abs(ea - eb)
        out.append(Comparison(k, "batch energies", worst, e_tol, "; ".join(notes)))
        ra = json.loads((ia / "sqd" / "result.json").read_text())
        rb = json.loads((ib / "sqd" / "result.json").read_text())
        out.append(Comparison(k, "merged energy", abs(ra["energy"] - rb["energy"]), e_tol))
        dev, note = _amplitude_deviation(ia / "sqd" / "state.npz", ib / "sqd" / "state.npz")
        out.append(Comparison(k, "teacher state", dev, a_tol, note))
        if (ia / "model.pt").exists() or (ib / "model.pt").exists():
            if (ia / "model.pt").exists() and (ib / "model.pt").exists():
                dev, note = _weights_deviation(ia / "model.pt", ib / "model.pt")
            else:
                dev, note = float("inf"), "trained on one path only"
            out.append(Comparison(k, "model weights", dev, w_tol, note))
    return out


def first_divergence(comparisons: list[Comparison]) -> Comparison | None:
    """The earliest comparison outside its tolerance."""
    return next((c for c in comparisons if not c.ok), None)


def report(comparisons: list[Comparison], iterations: tuple[int, int], paths: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: every comparison, the largest deviation of each quantity, the verdict."""
    largest: dict[str, float] = {}
    for c in comparisons:
        largest[c.quantity] = max(largest.get(c.quantity, 0.0), c.deviation)
    first = first_divergence(comparisons)
    same_length = iterations[0] == iterations[1]
    return {
        "identical": first is None and same_length,
        "iterations": {"sequential": iterations[0], "parallel": iterations[1]},
        "paths": paths,
        "first_divergence": asdict(first) if first else None,
        "largest_deviation": largest,
        "comparisons": [asdict(c) | {"ok": c.ok} for c in comparisons],
    }


def format_table(data: dict[str, Any]) -> str:
    """A readable table: one row per quantity with its largest deviation and the verdict."""
    lines = [f"{'quantity':<22} {'largest deviation':>18}  tolerance  result"]
    tolerances: dict[str, float] = {}
    oks: dict[str, bool] = {}
    for c in data["comparisons"]:
        tolerances[c["quantity"]] = c["tolerance"]
        oks[c["quantity"]] = oks.get(c["quantity"], True) and c["ok"]
    for quantity, dev in data["largest_deviation"].items():
        verdict = "identical" if dev == 0 else ("within tolerance" if oks[quantity] else "DIFFERS")
        lines.append(f"{quantity:<22} {dev:>18.3e}  {tolerances[quantity]:>9.0e}  {verdict}")
    its = data["iterations"]
    lines.append(f"iterations: sequential {its['sequential']}, parallel {its['parallel']}")
    first = data["first_divergence"]
    if data["identical"]:
        lines.append("VERIFIED: the parallel path reproduces the sequential path.")
    elif first:
        lines.append(
            f"DIVERGED at iteration {first['iteration']}: {first['quantity']} "
            f"(deviation {first['deviation']:.3e} > {first['tolerance']:.0e}) {first['detail']}".rstrip()
        )
    else:
        lines.append("DIVERGED: the paths ran a different number of iterations.")
    return "\n".join(lines)
