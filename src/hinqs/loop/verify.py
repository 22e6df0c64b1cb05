"""Prove a parallel run right: run the loop twice with one seed and compare everything.

Path A is the reference: batches one after another in-process, one thread. Path B is the
configured parallel path (process pool or MPI ranks). Iteration by iteration, in the order
the loop produces them, the comparison covers the sampled determinants, the subspace, the
batch compositions, the per-batch and merged energies, the teacher state and the trained
model weights. With one thread per solve on both paths everything must be bit-identical;
with more threads PySCF's reductions run in a dynamic order, so energies may differ by up
to 1e-10 Ha (and amplitudes and weights correspondingly little). Discrete things — which
determinants, which batches — must always be identical.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.io.files import StepResult, read_checkpoint, read_determinants, read_result, read_samples, read_state
from hinqs.io.layout import IterationFiles, SystemLayout, VerifyFiles
from hinqs.loop.settings import RunSettings

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


def _arrays_deviation(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, str]:
    worst, notes = 0.0, []
    for key in a.keys() & b.keys():
        dev, note = _array_deviation(np.asarray(a[key]), np.asarray(b[key]))
        worst = max(worst, dev)
        if note:
            notes.append(f"{key}: {note}")
    return worst, "; ".join(sorted(notes))


def _samples_arrays(path: Path) -> dict[str, np.ndarray]:
    samples = read_samples(path)
    dets = samples.determinants
    out = {"alpha": dets.alpha, "beta": dets.beta, "counts": dets.weights()}
    return out if samples.log_prob is None else {**out, "log_prob": samples.log_prob}


def _subspace_arrays(path: Path) -> dict[str, np.ndarray]:
    dets = read_determinants(path)
    return {"alpha": dets.alpha, "beta": dets.beta, "counts": dets.weights()}


def _state_deviation(path_a: Path, path_b: Path) -> tuple[float, str]:
    """Strings must match exactly; amplitudes up to a global sign (an eigenvector's sign is free)."""
    a, b = read_state(path_a), read_state(path_b)
    dev, note = _arrays_deviation({"ci_strs_a": a.strs_a, "ci_strs_b": a.strs_b},
                                  {"ci_strs_a": b.strs_a, "ci_strs_b": b.strs_b})  # fmt: skip
    if dev:
        return dev, note
    if a.amplitudes.shape != b.amplitudes.shape:
        return float("inf"), f"amplitude shapes {a.amplitudes.shape} and {b.amplitudes.shape}"
    sign = 1.0 if float(np.vdot(a.amplitudes, b.amplitudes)) >= 0 else -1.0
    return float(np.max(np.abs(a.amplitudes - sign * b.amplitudes))), ("opposite global sign" if sign < 0 else "")


def _weights_deviation(path_a: Path, path_b: Path) -> tuple[float, str]:
    a, b = read_checkpoint(path_a)["model_state"], read_checkpoint(path_b)["model_state"]
    if a.keys() != b.keys():
        return float("inf"), "different parameter names"
    worst = max((float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel()), default=0.0)
    return worst, ""


def _batch_hashes(batches_dir: Path) -> dict[int, str | None]:
    hashes = {}
    for path in sorted(batches_dir.glob("batch_*.json")):
        record = json.loads(path.read_text())
        hashes[int(record["index"])] = record.get("content_hash")
    return hashes


def _batch_energies(ra: StepResult, rb: StepResult) -> tuple[float, str]:
    ea_all, eb_all = ra.energies_by_batch, rb.energies_by_batch
    worst, notes = 0.0, []
    for index in sorted(set(ea_all) | set(eb_all)):
        ea, eb = ea_all.get(index), eb_all.get(index)
        if ea is None or eb is None:
            if (ea is None) != (eb is None):
                worst, notes = float("inf"), [*notes, f"batch {index} failed on one path only"]
            continue
        worst = max(worst, abs(ea - eb))
    return worst, "; ".join(notes)


def _compare_iteration(
    ia: IterationFiles, ib: IterationFiles, k: int, tol: tuple[float, float, float]
) -> list[Comparison]:
    e_tol, a_tol, w_tol = tol
    samples = _arrays_deviation(_samples_arrays(ia.samples), _samples_arrays(ib.samples))
    subspace = _arrays_deviation(_subspace_arrays(ia.subspace), _subspace_arrays(ib.subspace))
    out = [
        Comparison(k, "sampled determinants", *_with_tolerance(samples, 0.0)),
        Comparison(k, "subspace", *_with_tolerance(subspace, 0.0)),
    ]
    ha, hb = _batch_hashes(ia.batches), _batch_hashes(ib.batches)
    differing = sorted(i for i in set(ha) | set(hb) if ha.get(i) != hb.get(i))
    out.append(
        Comparison(k, "batch compositions", float(len(differing)), 0.0, f"batches {differing}" if differing else "")
    )
    ra, rb = read_result(ia.result), read_result(ib.result)
    dev, note = _batch_energies(ra, rb)
    out.append(Comparison(k, "batch energies", dev, e_tol, note))
    out.append(Comparison(k, "merged energy", abs(ra.energy - rb.energy), e_tol))
    out.append(Comparison(k, "teacher state", *_with_tolerance(_state_deviation(ia.state, ib.state), a_tol)))
    if ia.model.exists() or ib.model.exists():
        both = ia.model.exists() and ib.model.exists()
        dev, note = _weights_deviation(ia.model, ib.model) if both else (float("inf"), "trained on one path only")
        out.append(Comparison(k, "model weights", dev, w_tol, note))
    return out


def _with_tolerance(found: tuple[float, str], tolerance: float) -> tuple[float, float, str]:
    return found[0], tolerance, found[1]


def compare_runs(dir_a: Path, dir_b: Path, iterations: int, *, exact: bool) -> list[Comparison]:
    """Every comparison, in the order the loop produces the quantities."""
    tol = (0.0, 0.0, 0.0) if exact else (ENERGY_TOL, AMPLITUDE_TOL, WEIGHT_TOL)
    a, b = SystemLayout(Path(dir_a)), SystemLayout(Path(dir_b))
    out: list[Comparison] = []
    for k in range(1, iterations + 1):
        out.extend(_compare_iteration(a.iteration(k), b.iteration(k), k, tol))
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


def _check_parallel(settings: RunSettings) -> None:
    """A parallel path must exist; MPI ranks exist only under mpi4py's pool server."""
    from hinqs.errors import InputError

    executor = settings.parallel.executor
    if executor == "sequential":
        raise InputError("parallel.executor is 'sequential': there is no parallel path to verify")
    if executor == "mpi":
        from hinqs.sqd.executors.mpi import inside_pool_server

        if not inside_pool_server():
            raise InputError(
                "parallel.executor is 'mpi': run verify under MPI, e.g. "
                "'mpiexec -n 3 python -m mpi4py.futures -m hinqs verify --config ...'"
            )


def verify_settings(
    settings: RunSettings, system: str, out: Path, *, iterations: int | None = None, parallel_seed: int | None = None
) -> tuple[dict[str, Any], str]:
    """Run both paths into ``out`` (one shared Hamiltonian) and write report.json/report.txt.

    Both paths use one Hamiltonian: integrals are computed once (the SCF of degenerate
    molecules depends on thread counts), exactly as the workflow does.
    """
    import shutil

    from hinqs.io.atomic import write_json, write_text
    from hinqs.loop.driver import run_loop
    from hinqs.steps.prepare import prepare

    _check_parallel(settings)
    files = VerifyFiles(Path(out))
    for name in ("sequential", "parallel"):
        shutil.rmtree(files.run(name), ignore_errors=True)
    ham = prepare(settings, system, files.hamiltonian(system))
    reference = {"parallel__executor": "sequential", "parallel__threads_per_worker": 1}
    seq = run_loop(settings, system, files.run("sequential"), max_iterations=iterations, sqd_overrides=reference,
                   hamiltonian_dir=ham)  # fmt: skip
    par_settings = settings if parallel_seed is None else replace(settings, seed=parallel_seed)
    par = run_loop(par_settings, system, files.run("parallel"), max_iterations=iterations, hamiltonian_dir=ham)
    exact = settings.parallel.threads_per_worker == 1
    comparisons = compare_runs(seq.system_dir, par.system_dir, min(seq.iterations, par.iterations), exact=exact)
    paths = {
        "sequential": {"executor": "sequential", "workers": 1, "threads_per_worker": 1},
        "parallel": {k: getattr(settings.parallel, k) for k in ("executor", "workers", "threads_per_worker")},
        "exact": exact,
    }
    data = report(comparisons, (seq.iterations, par.iterations), paths)
    table = format_table(data)
    write_json(files.report_json, data)
    write_text(files.report_txt, table + "\n")
    return data, table
