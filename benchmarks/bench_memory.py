"""Peak memory of one batch solve against its product-space dimension (feeds hinqs.sqd.dimension).

Each solve runs in a fresh process: the script records the resident memory after the imports
and the integrals are loaded (the baseline) and the peak (VmHWM) after the solve, for
``solve_fermion`` and ``lean``, at a few dimensions, and fits
``peak = baseline + bytes_per_determinant * dimension`` by least squares on the increments.

The strings are the K lowest of the active space by the sum of their occupied orbital
energies (a stand-in for sampled strings: memory depends on K, not on which strings).
``--max-cycle`` only needs to exceed PySCF's Davidson ``max_space`` (12 + 1 vectors) for the
peak to be reached; keep it small to bound the time.

    PYTHONPATH=src python benchmarks/bench_memory.py --hamiltonian .cache/n2_ccpvdz/hamiltonian \
        --strings 150,300,500,700 --solvers solve_fermion,lean
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

import numpy as np


def lowest_strings(mo_energy: np.ndarray, n_electrons: int, k: int) -> np.ndarray:
    """The k strings of lowest orbital-energy sum (deterministic; ties by string value)."""
    norb = len(mo_energy)
    # Enumerating all C(26,5) = 65,780 strings is cheap.
    combos = np.array(list(itertools.combinations(range(norb), n_electrons)), dtype=np.int64)
    energy = mo_energy[combos].sum(axis=1)
    strings = (np.uint64(1) << combos.astype(np.uint64)).sum(axis=1, dtype=np.uint64)
    order = np.lexsort((strings, energy))
    return np.sort(strings[order[:k]])


def rss_mb(field: str) -> float:
    """A /proc/self/status memory field (VmRSS or VmHWM) in MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(field)


def child(args: argparse.Namespace) -> None:
    """One solve; prints a JSON line."""
    import pyscf.fci.selected_ci  # noqa: F401  (imports count in the baseline)

    from hinqs.io.hamiltonian import load_hamiltonian, read_meta
    from hinqs.loop.settings import RunSettings, with_overrides
    from hinqs.sqd.solvers import solve

    if args.solver == "solve_fermion":
        import qiskit_addon_sqd.fermion  # noqa: F401

    ham = load_hamiltonian(args.hamiltonian, mmap=True)
    meta = read_meta(args.hamiltonian)
    nelec = tuple(meta["nelec"])
    mo = np.asarray(meta["active_space"]["mo_energy_active"])
    strings = lowest_strings(mo, nelec[0], args.k)
    np.asarray(ham.eri).sum()  # touch the integrals: they belong to the baseline
    base = rss_mb("VmRSS")
    settings = with_overrides(
        RunSettings.defaults().sqd.solver, solver=args.solver, max_cycle=args.max_cycle, conv_tol=1e-10
    )
    start, cpu = time.perf_counter(), time.process_time()
    out = solve(strings, strings, ham.hcore, ham.eri, nelec, settings)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = rss_mb("VmHWM")
    print(
        json.dumps(
            {
                "solver": args.solver,
                "k": args.k,
                "dimension": args.k * args.k,
                "baseline_mb": base,
                "peak_mb": peak,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "energy": out.energy,
            }
        )
    )


def fit(rows: list[dict]) -> tuple[float, float]:
    """Least-squares ``increment_mb = a + b * dimension``; returns (a MB, b bytes/determinant)."""
    dims = np.array([r["dimension"] for r in rows], dtype=float)
    inc = np.array([r["peak_mb"] - r["baseline_mb"] for r in rows], dtype=float)
    design = np.stack([np.ones_like(dims), dims], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, inc, rcond=None)
    return float(a), float(b * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hamiltonian", required=True)
    parser.add_argument("--strings", default="150,300,500")
    parser.add_argument("--solvers", default="solve_fermion,lean")
    parser.add_argument("--max-cycle", type=int, default=16)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--solver", help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print("| solver | K | dimension | baseline MB | peak MB | increment MB | B/det | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for solver in args.solvers.split(","):
        rows = []
        for k in (int(x) for x in args.strings.split(",")):
            cmd = [sys.executable, __file__, "--child", "--hamiltonian", args.hamiltonian, "--solver", solver]
            cmd += ["--k", str(k), "--max-cycle", str(args.max_cycle)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            inc = row["peak_mb"] - row["baseline_mb"]
            print(
                f"| {solver} | {k} | {row['dimension']:,} | {row['baseline_mb']:.0f} | {row['peak_mb']:.0f} | "
                f"{inc:.0f} | {inc * 1e6 / row['dimension']:.0f} | {row['seconds']:.1f} | {row['cpu_seconds']:.1f} |",
                flush=True,
            )
        a, b = fit(rows)
        print(f"fit {solver}: peak = baseline + {a:.0f} MB + {b:.0f} B x dimension")


if __name__ == "__main__":
    main()
