"""A system's summary.json content, aggregated from the files the steps wrote, and read back.

Everything is read back from disk, so a summary can be rebuilt at any time (and by
``snakemake --report``) without rerunning anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.chem.references import best_reference
from hinqs.errors import InputError
from hinqs.io.files import read_benchmark_seconds, read_determinants, read_json, read_json_or_none, read_result
from hinqs.io.hamiltonian import active_shape, read_meta
from hinqs.io.layout import SystemLayout
from hinqs.loop.convergence import Status, read_status

MHA = 1000.0
CHEMICAL_ACCURACY_MHA = 1.6
STAGES = ("sample", "subspace", "diagonalize", "pt2", "train")  # steps with a Snakemake benchmark file
DISTINCT_HA = 1e-8  # iterations whose E_var differs by less are one point (a stalled loop repeats itself)


def _benchmark_seconds(path: Path) -> float | None:
    """Wall seconds from a Snakemake ``benchmark:`` file (first column ``s``); garbage is one line."""
    return read_benchmark_seconds(path)


def _subspace_size(path: Path) -> int | None:
    return len(read_determinants(path)) if path.exists() else None


def _numbers(path: Path, kind: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """A side file's mapping ({} when absent) whose ``keys``, where present, are finite numbers
    or null: the summary computes with them, so a garbled value is one line here, not a
    traceback (or a wrong line) later."""
    data = read_json_or_none(path, kind) or {}
    for key in keys:
        value = data.get(key)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (number and np.isfinite(value)):
            raise InputError(f"{path}: {kind} has {key} = {value!r}, not a finite number")
    return data


def _status_or_none(path: Path) -> Status | None:
    return read_status(path) if path.exists() else None


def iteration_record(system: SystemLayout, k: int) -> dict[str, Any]:
    """What one iteration produced, from its files."""
    files = system.iteration(k)
    result = read_result(files.result) if files.result.exists() else None
    status = _status_or_none(files.status)
    train = _numbers(files.train_history, "training history", ("kl_after", "teacher_mass_after"))
    stats = _numbers(files.sample_stats, "sample statistics", ("n_unique", "n_new_unique"))
    batches = result.batches if result else []
    data = result.data if result else {}
    best_shape = result.best_record().get("product_shape") if result else None
    pt2 = _numbers(files.pt2, "PT2 record", ("e_pt2", "e_pt2_error", "e_total"))
    return {
        "iteration": k,
        "energy": result.energy if result else None,
        "best_energy_so_far": status.best_energy if status else None,
        "delta": status.delta if status else None,
        "unique_sampled": stats.get("n_unique"),
        "new_determinants": stats.get("n_new_unique", stats.get("n_unique")),
        "subspace_size": _subspace_size(files.subspace),
        "product_shape": best_shape,
        "subspace_dimension": int(np.prod(best_shape)) if best_shape else None,
        "batch_dimensions": data.get("dimensions"),
        "davidson_converged": data.get("converged"),
        "davidson_residual": result.best_record().get("residual_norm") if result else None,
        "batches_capped": (data.get("capping") or {}).get("n_capped"),
        "batches_ok": sum(1 for b in batches if b.get("status") == "ok"),
        "batches_failed": sum(1 for b in batches if b.get("status") != "ok"),
        "e_pt2": pt2.get("e_pt2"),
        "e_pt2_error": pt2.get("e_pt2_error"),
        "e_pt2_ci95": pt2.get("e_pt2_ci95"),
        "e_var_plus_pt2": pt2.get("e_total"),
        "pt2_complete": pt2.get("complete"),
        "train_kl_after": train.get("kl_after"),
        "teacher_mass_after": train.get("teacher_mass_after"),
        "seconds": {stage: _benchmark_seconds(system.benchmark(stage, k)) for stage in STAGES},
    }


def _pt2_summary(
    records: list[dict[str, Any]], best: float | None, reference: float | None, turned: int | None = None
) -> dict[str, Any] | None:
    """E_var + E_PT2 of the best iteration and the extrapolation to E_PT2 = 0, with errors in mHa.

    ``interval`` is where the exact energy lies by the best iteration's own numbers
    (:func:`hinqs.subspace.pt2.bracket`). The fit is handed every iteration whose E_var differs
    from the others' (a loop at its string cap repeats its last point) and keeps those in the
    linear regime (:func:`hinqs.subspace.pt2.extrapolate`; none reported without three).
    Its uncertainty: the fit's scatter, the PT2 errors propagated and the curvature (``basis``
    says which). Only an unbiased correction is extrapolated:
    complete, or semistochastic with its standard error (an older screened one is not).
    Only iterations in the best iteration's orbitals are fitted (``turned``: the iteration after
    which the loop worked in natural orbitals): each basis has its own line, and one fitted
    across the turn put C2/6-31G's intercept 0.80 mHa below FCI (+0.022 in one basis).
    """
    from hinqs.subspace.pt2 import bracket, extrapolate

    with_pt2 = [r for r in records if r.get("e_pt2") is not None and r.get("energy") is not None]
    if not with_pt2 or best is None:
        return None
    top = min(with_pt2, key=lambda r: r["energy"])
    if turned is not None:
        after = top["iteration"] > turned
        with_pt2 = [r for r in with_pt2 if (r["iteration"] > turned) == after]
    points: list[tuple[float, float, float]] = []
    for r in with_pt2:
        if all(abs(r["energy"] - e) > DISTINCT_HA for _, e, _ in points):
            points.append((r["e_pt2"], r["energy"], r.get("e_pt2_error") or 0.0))
    # A screened correction (older versions) missed a share of the connected space that changed
    # from one iteration to the next: E_var was not linear in it (measured at 52 qubits: slope +1.4).
    unbiased = all(r.get("pt2_complete") or r.get("e_pt2_error") is not None for r in with_pt2)
    fit = None
    if len(points) >= 3 and unbiased:
        fit = extrapolate([p[1] for p in points], [p[0] for p in points], [p[2] for p in points])

    def error(value: float | None) -> float | None:
        return None if value is None or reference is None else (value - reference) * MHA

    return {
        "iteration": top["iteration"],
        "e_var": top["energy"],
        "e_pt2": top["e_pt2"],
        "e_pt2_error": top.get("e_pt2_error"),
        "e_pt2_ci95": top.get("e_pt2_ci95"),
        "e_var_plus_pt2": top["e_var_plus_pt2"],
        "complete": top["pt2_complete"],
        "error_mha": error(top["e_var_plus_pt2"]),
        "interval": bracket(
            top["energy"], top["e_pt2"], top.get("e_pt2_ci95") or 0.0, top.get("davidson_residual") or 0.0
        ),
        "extrapolated": None if fit is None else {**fit, "error_mha": error(fit["energy"])},
    }


def _best_of(records: list[dict[str, Any]]) -> tuple[list[float], float | None, int | None]:
    """The finished iterations' energies, the lowest and the number of the iteration that has it.

    The iteration's own number: an unfinished iteration has no energy, so a position among
    the finished ones would name the wrong iteration (and the answer line its subspace).
    """
    finished = [r for r in records if r["energy"] is not None]
    if not finished:
        return [], None, None
    top = min(finished, key=lambda r: r["energy"])  # the first of equal energies, as before
    return [r["energy"] for r in finished], top["energy"], top["iteration"]


def _orbitals(system: SystemLayout, meta: dict[str, Any]) -> dict[str, Any]:
    """The orbitals the iterations worked in: prepare's choice, and the iteration after which
    the loop turned to its state's natural orbitals (natural_orbitals.after), if it did."""
    turned = None
    if (system.natural_hamiltonian / "meta.json").is_file():
        turned = read_meta(system.natural_hamiltonian)["natural_orbitals"]["iteration"]  # hinqs.steps.orbitals
    active = meta.get("active_space") or {}  # an FCIDUMP's meta records no orbital choice
    return {"prepared": active.get("orbitals"), "natural_after": turned}


def build_summary(
    system_dir: str | os.PathLike[str], n_iterations: int, user_reference: dict[str, Any] | None = None
) -> dict[str, Any]:
    """summary.json's content for a system whose iterations 1..n_iterations are done.

    ``user_reference`` (``{"energy": E, "source": text}``, the system's ``reference`` key) is
    the best reference when given: the user knows a better number than prepare computes.
    """
    system = SystemLayout(Path(system_dir))
    meta = read_meta(system.hamiltonian)
    active_shape(meta, system.meta)  # norb and nelec are read below: a meta.json without them is one line
    records = [iteration_record(system, k) for k in range(1, n_iterations + 1)]
    last = _status_or_none(system.iteration(n_iterations).status)
    refs = meta.get("references", {})
    references = {
        "hf": meta.get("e_hf"),
        "ccsd": refs.get("ccsd"),
        "ccsd_t": refs.get("ccsd_t"),
        "fci": refs.get("fci"),
    }
    energies, best, best_iteration = _best_of(records)
    errors = {
        name: (best - value) * MHA for name, value in references.items() if value is not None and best is not None
    }
    best_name, best_ref = best_reference(meta)
    if user_reference is not None:
        references["user"] = float(user_reference["energy"])
        best_name, best_ref = str(user_reference["source"]), float(user_reference["energy"])
        if best is not None:
            errors["user"] = (best - best_ref) * MHA
    orbitals = _orbitals(system, meta)
    pt2 = _pt2_summary(records, best, best_ref, orbitals["natural_after"])
    seconds: dict[str, float] = {"prepare": _benchmark_seconds(system.benchmark("prepare")) or 0.0}
    for record in records:
        for stage, value in record["seconds"].items():
            seconds[stage] = seconds.get(stage, 0.0) + (value or 0.0)
    return {
        "system": meta.get("system", {}).get("name", system.name),
        "norb": meta["norb"],
        "nelec": meta["nelec"],
        "fci_space": refs.get("n_determinants"),
        "final_energy": energies[-1] if energies else None,
        "best_energy": best,
        "best_iteration": best_iteration,
        "iterations": n_iterations,
        "converged": bool(last and last.converged),
        "stop_reason": last.reason if last else None,
        "stop_detail": last.detail if last else None,
        "references": references,
        "error_mha": errors,
        "best_reference": {
            "name": best_name,
            "energy": best_ref,
            "error_mha": None if best_ref is None or best is None else (best - best_ref) * MHA,
        },
        "pt2": pt2,
        "orbitals": orbitals,
        "within_chemical_accuracy_of_fci": (abs(errors["fci"]) < CHEMICAL_ACCURACY_MHA) if "fci" in errors else None,
        "seconds_per_stage": seconds,
        "per_iteration": records,
    }


def _finite_or_null(value: Any) -> bool:
    """JSON null or a finite number (not a bool): what an energy in a summary may be."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return value is None or (number and bool(np.isfinite(value)))


def read_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A system's summary.json, checked for what the result line and the scan read from it:
    a file that is not one (garbage, another JSON, a hand-edited value) is one line."""
    summary = read_json(path, "summary")
    shapes = {
        "system": isinstance(summary.get("system"), str),
        "best_energy": _finite_or_null(summary.get("best_energy")),
        "references": isinstance(summary.get("references"), dict)
        and all(_finite_or_null(v) for v in summary["references"].values()),
        "error_mha": isinstance(summary.get("error_mha"), dict),
        "converged": isinstance(summary.get("converged"), bool),
        "per_iteration": isinstance(summary.get("per_iteration"), list)
        and all(isinstance(r, dict) for r in summary["per_iteration"]),
    }
    wrong = [key for key, ok in shapes.items() if not ok]
    if wrong:
        raise InputError(f"{path}: not a hinqs summary (missing or invalid: {', '.join(wrong)})")
    return summary
