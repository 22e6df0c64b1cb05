"""Benchmark of the parallel SQD engine: layouts (workers x threads) and solvers on the same batches.

What it compares, on one Hamiltonian and one determinant pool (hence identical batches):

- ``today``: the sequential baseline users run now, batches one after another with every
  core as an OpenMP thread (``--executor sequential --threads-per-worker CORES``), with
  ``solve_fermion``;
- the engine's ``process`` executor in each layout ``WxT`` (W workers of T threads), with
  each solver asked for.

Columns of the table:

``wall``            the whole step (batch formation, pool start, solves, writing results);
``speedup``         today's wall / this wall;
``eff``             parallel efficiency against the ideal, (sum of one-thread batch times of
                    this solver / cores) / wall;
``start``           pool start-up (spawning workers, importing PySCF and qiskit-addon-sqd);
``dispatch``        wall - start - makespan, where the makespan is the busiest worker's sum
                    of batch times: submitting, pickling, collecting and writing results;
``ovh%``            (start + dispatch) / wall, the engine's overhead (target: < 5 % for
                    batches of 100k determinants or more);
``rss``             peak resident memory of one worker process (max over workers, MB; for the
                    sequential row, the step's own process);
``|dE|``            largest per-batch energy difference from the same solver's one-thread run.

The one-thread batch times come from a sequential one-thread pass per solver (also the
reference for ``|dE|``); ``--no-ideal-pass`` takes them from the ``Cx1`` layout instead.

Examples::

    # a tiny check (2-core VM, seconds)
    python benchmarks/bench_sqd.py --cores 2 --layouts 1x2,2x1 --n-strings 30 --samples-per-batch 60
    # a 16-core node, 300 samples per batch (about 550 x 550 = 300k determinants)
    python benchmarks/bench_sqd.py --cores 16 --batches 16 --layouts 1x16,2x8,4x4,8x2,16x1 \\
        --n-strings 700 --pool-size 20000 --samples-per-batch 300 --solvers solve_fermion,lean

``--compare-solvers`` adds a one-thread timing of ``solve_fermion`` (bare, and with our
convergence check) against ``lean`` on the first batch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from hinqs.io.hamiltonian import load_hamiltonian, write_hamiltonian
from hinqs.loop.settings import RunSettings, with_overrides
from hinqs.sqd.batches import canonical_subspace, form_batches
from hinqs.sqd.settings import SQDSettings
from hinqs.sqd.step import run_diagonalization

SYSTEMS = {
    # name: (atom, basis, frozen core orbitals)
    "n2": ("N 0 0 0; N 0 0 1.0977", "6-31g", 2),
    "lih": ("Li 0 0 0; H 0 0 1.5949", "6-31g", 0),
    "h2o": ("O 0 0 0; H 0.7571 0.5861 0; H -0.7571 0.5861 0", "6-31g", 0),
    "c2h4": (
        "C 0 0 0.6695; C 0 0 -0.6695; H 0 0.9289 1.2321; H 0 -0.9289 1.2321; H 0 0.9289 -1.2321; H 0 -0.9289 -1.2321",
        "sto-3g",
        0,
    ),
}


def build_hamiltonian(name: str, out_dir: Path) -> Path:
    """Active-space integrals of a named system (frozen core) through hinqs' own prepare path."""
    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.config import complete_system

    atom, basis, frozen = SYSTEMS[name]
    system = {"name": name, "geometry": atom, "basis": basis, "spin": 0, "frozen_core": frozen, "orbitals": "hf"}
    ints, _ = integrals_from_geometry(complete_system(system))
    return write_hamiltonian(out_dir, ints.hcore, ints.eri, ints.nelec, ints.ecore, {"system": name})


def nqs_like_pool(norb: int, nelec: tuple[int, int], n_pairs: int, n_strings: int, seed: int, max_exc: int):
    """Pairs over a vocabulary of ``n_strings`` low-excitation strings, low ones favoured, with counts."""
    rng = np.random.default_rng(seed)

    def strings(nocc: int) -> np.ndarray:
        found = {(1 << nocc) - 1}
        for _ in range(100 * n_strings):
            if len(found) >= n_strings:
                break
            k = int(rng.integers(1, min(max_exc, nocc, norb - nocc) + 1))
            holes = rng.choice(nocc, size=k, replace=False)
            parts = rng.choice(np.arange(nocc, norb), size=k, replace=False)
            found.add(sum(1 << int(i) for i in (set(range(nocc)) - set(holes.tolist())) | set(parts.tolist())))
        return np.array(sorted(found), dtype=np.uint64)

    va = strings(nelec[0])
    vb = va if nelec[0] == nelec[1] else strings(nelec[1])
    wa, wb = 1.0 / (1.0 + np.arange(len(va))) ** 0.5, 1.0 / (1.0 + np.arange(len(vb))) ** 0.5
    ia = rng.choice(len(va), size=3 * n_pairs, p=wa / wa.sum())
    ib = rng.choice(len(vb), size=3 * n_pairs, p=wb / wb.sum())
    pairs = np.unique(np.stack([ia, ib], axis=1), axis=0)
    pairs = pairs[rng.permutation(len(pairs))[:n_pairs]]
    return va[pairs[:, 0]], vb[pairs[:, 1]], rng.integers(1, 100, size=len(pairs))


def parse_layouts(text: str) -> list[tuple[int, int]]:
    layouts = []
    for item in text.split(","):
        w, t = item.lower().split("x")
        layouts.append((int(w), int(t)))
    return layouts


def run_step(args, ham_dir: Path, pool, out: Path, solver: str, executor: str, workers: int, threads: int):
    defaults = RunSettings.defaults()
    settings = SQDSettings(
        seed=args.seed,
        iteration=0,
        n_batches=args.batches,
        samples_per_batch=args.samples_per_batch,
        max_dimension=None,
        memory_mb=None,
        shrink_to_memory=False,
        solver=with_overrides(defaults.sqd.solver, solver=solver, max_cycle=args.max_cycle),
        parallel=with_overrides(
            defaults.parallel, executor=executor, workers=workers, threads_per_worker=threads, retries=0
        ),
    )
    shutil.rmtree(out, ignore_errors=True)
    result = run_diagonalization(ham_dir, *pool, out, settings)
    return result.summary


def makespan(summary) -> float:
    busy: dict[int | None, float] = defaultdict(float)
    for batch in summary["batches"]:
        busy[batch["worker"]["pid"]] += batch["seconds"]
    return max(busy.values())


def compare_solvers(ham_dir: Path, batch) -> None:
    """One-thread timing of bare solve_fermion, our solve_fermion (with residual check) and lean."""
    from qiskit_addon_sqd.fermion import solve_fermion

    from hinqs.sqd.solvers import solve_lean, solve_with_solve_fermion
    from hinqs.threads import thread_limit

    ham = load_hamiltonian(ham_dir)
    settings = RunSettings.defaults().sqd.solver
    a, b = batch.ci_strs_a, batch.ci_strs_b
    times = {}
    with thread_limit(1):
        start = time.perf_counter()
        bare = solve_fermion((a.view(np.int64), b.view(np.int64)), ham.hcore, ham.eri, max_cycle=200, tol=1e-10)[0]
        times["solve_fermion (bare)"] = time.perf_counter() - start
        start = time.perf_counter()
        ours = solve_with_solve_fermion(a, b, ham.hcore, ham.eri, ham.nelec, settings)
        times["solve_fermion + residual"] = time.perf_counter() - start
        start = time.perf_counter()
        lean = solve_lean(a, b, ham.hcore, ham.eri, ham.nelec, settings)
        times["lean"] = time.perf_counter() - start
    print(f"\nsolvers on batch 0 ({len(a)} x {len(b)} = {len(a) * len(b):,} determinants, 1 thread)")
    for name, seconds in times.items():
        print(f"  {name:26s} {seconds:8.2f} s   bare/this = {times['solve_fermion (bare)'] / seconds:5.2f}x")
    print(f"  |E(lean) - E(solve_fermion)| = {abs(lean.energy - bare):.2e} Ha; converged: {ours.converged}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=sorted(SYSTEMS), default="n2", help="molecule (default n2/6-31g)")
    parser.add_argument("--hamiltonian", type=Path, help="use this Hamiltonian folder instead of --system")
    parser.add_argument("--pool-size", type=int, default=3000, help="determinant pairs in the pool")
    parser.add_argument("--n-strings", type=int, default=60, help="distinct strings per spin in the pool")
    parser.add_argument("--max-exc", type=int, default=3, help="largest excitation per spin in the pool")
    parser.add_argument("--samples-per-batch", type=int, default=200)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores the layouts share")
    parser.add_argument("--layouts", default=None, help="comma-separated WxT (default: Cx1 and 1xC)")
    parser.add_argument("--solvers", default="solve_fermion,lean")
    parser.add_argument("--max-cycle", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--no-ideal-pass", action="store_true", help="take one-thread times from the Cx1 layout")
    parser.add_argument("--compare-solvers", action="store_true", help="also time the solvers on batch 0")
    parser.add_argument("--workdir", type=Path, help="keep outputs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)

    cores = args.cores
    layouts = parse_layouts(args.layouts) if args.layouts else [(cores, 1), (1, cores)]
    solvers = args.solvers.split(",")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_sqd."))
    work.mkdir(parents=True, exist_ok=True)
    ham_dir = args.hamiltonian or build_hamiltonian(args.system, work / "hamiltonian")
    ham = load_hamiltonian(ham_dir)
    pool = nqs_like_pool(ham.norb, ham.nelec, args.pool_size, args.n_strings, args.seed, args.max_exc)
    batches = form_batches(
        canonical_subspace(*pool),
        ham.nelec,
        n_batches=args.batches,
        samples_per_batch=args.samples_per_batch,
        seed=args.seed,
        iteration=0,
    )
    dets = [b.n_determinants for b in batches]
    print(
        f"system {ham.meta.get('system', ham_dir)}: norb {ham.norb}, nelec {ham.nelec}; pool {len(pool[0])} pairs; "
        f"{len(batches)} batches of {args.samples_per_batch} samples, {min(dets):,}-{max(dets):,} determinants; "
        f"{cores} cores; host cpus {os.cpu_count()}",
        flush=True,
    )

    # Imports are paid once per process; the baseline runs in this one, so pay them before timing.
    # The engine's rows include their workers' imports (in "start"): that is the engine's real cost.
    from hinqs.sqd.worker import preload

    preload("solve_fermion")
    rows = []
    today = run_step(args, ham_dir, pool, work / "today", "solve_fermion", "sequential", 1, cores)
    rows.append({"solver": "solve_fermion", "layout": f"seq 1x{cores} (today)", "summary": today})
    one_thread: dict[str, dict] = {}
    for solver in solvers:
        if not args.no_ideal_pass:
            one_thread[solver] = run_step(args, ham_dir, pool, work / f"{solver}_seq1", solver, "sequential", 1, 1)
        for workers, threads in layouts:
            name = f"{solver}_{workers}x{threads}"
            summary = run_step(args, ham_dir, pool, work / name, solver, "process", workers, threads)
            rows.append({"solver": solver, "layout": f"{workers}x{threads}", "summary": summary})
            if args.no_ideal_pass and threads == 1 and workers == cores:
                one_thread[solver] = summary
            print(f"  done {name}: {summary['timing']['wall_seconds']:.2f} s", flush=True)

    today_wall = today["timing"]["wall_seconds"]
    header = (
        f"{'solver':14s} {'layout':18s} {'wall s':>8s} {'speedup':>8s} {'eff':>6s} {'start s':>8s} "
        f"{'dispatch s':>10s} {'ovh%':>6s} {'rss MB':>7s} {'|dE| Ha':>9s}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    table = []
    for row in rows:
        s = row["summary"]
        wall = s["timing"]["wall_seconds"]
        start = s["timing"]["pool_start_seconds"]
        dispatch = wall - start - makespan(s)
        ref = one_thread.get(row["solver"])
        ideal = sum(b["seconds"] for b in ref["batches"]) / cores if ref else float("nan")
        d_e = max(abs(a - b) for a, b in zip(s["batch_energies"], ref["batch_energies"], strict=True)) if ref else 0
        rss = max((b["peak_rss_mb"] or 0.0) for b in s["batches"])
        entry = {
            "solver": row["solver"],
            "layout": row["layout"],
            "wall_s": wall,
            "speedup": today_wall / wall,
            "efficiency": ideal / wall,
            "pool_start_s": start,
            "dispatch_s": dispatch,
            "overhead_pct": 100 * (start + dispatch) / wall,
            "peak_rss_mb": rss,
            "max_abs_dE": d_e,
        }
        table.append(entry)
        print(
            f"{entry['solver']:14s} {entry['layout']:18s} {wall:8.2f} {entry['speedup']:8.2f} "
            f"{entry['efficiency']:6.2f} {start:8.2f} {dispatch:10.2f} {entry['overhead_pct']:6.1f} "
            f"{rss:7.0f} {d_e:9.1e}"
        )
    if args.compare_solvers:
        compare_solvers(ham_dir, batches[0])
    if args.json:
        args.json.write_text(json.dumps({"argv": sys.argv, "rows": table}, indent=2))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
