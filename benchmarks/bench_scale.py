"""The 52-qubit workload: batch dimensions, layouts and cost per determinant (N2/cc-pVDZ, 26 orbitals).

The pool is what a sampler that has learned the HF-dominated ground state of N2 proposes:
each determinant's alpha and beta strings are drawn independently, the HF string with
probability ``--p-hf`` and otherwise one of the single and double excitations of HF with
probability proportional to its Epstein-Nesbet PT2 score against HF to the power ``--power``
(exact matrix elements, one H|HF> product). The default power 0 spreads the samples evenly
over the 2,205 excitations, as an untrained or label-smoothed NQS does in its first
iterations: that is the regime where 5,000 samples become a 2,000 x 2,000 product space
(power 0.5 concentrates them: K stays near 450 at S = 5,000). ``--pool-samples`` draws
give the pool's unique determinants with counts; each batch then draws ``S`` of them (the
engine's own batch formation) for S in ``--samples``.

For each S the table gives the batch's K_alpha x K_beta product dimension, then runs the
engine's real diagonalize step on ``--batches`` batches in every layout (workers x threads)
and solver, capped at ``--max-dimension`` so that every measured solve stays short on a
small machine (the cap keeps the heaviest strings: it is the engine's own sqd.max_dimension).
Davidson runs exactly ``--max-cycle`` cycles (conv_tol 1e-14 never stops it early), so
``us/det/cycle`` = batch seconds / (dimension x max_cycle) is a clean unit cost, including
the work after Davidson (lean: one H|c>; solve_fermion: RDMs and the residual check).

    PYTHONPATH=src python benchmarks/bench_scale.py                       # 2 cores, the defaults
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_scale.py --batches 16 \\
        --layouts 1x16,2x8,4x4,8x2,16x1 --full-layouts-at 5000 --max-dimension 500000 \\
        --max-cycle 10 --json scale16.json                                       # a 16-core node
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def hamiltonian(path: Path) -> Path:
    """The N2/cc-pVDZ Hamiltonian folder of config/n2_ccpvdz.yaml (prepared once, no references)."""
    from hinqs.chem.prepare import prepare_system
    from hinqs.config import load_config, schema_defaults

    if not (path / "meta.json").exists():
        system = load_config(ROOT / "config" / "n2_ccpvdz.yaml")["systems"][0]
        references = {**schema_defaults()["references"], "fci_max_determinants": 0, "ccsd": False, "sci": False}
        prepare_system(system, references, path)
    return path


def string_distribution(ham_dir: Path, p_hf: float, power: float) -> tuple[np.ndarray, np.ndarray]:
    """HF + its singles and doubles, with sampling probabilities (HF: p_hf; others by PT2 score^power).

    ``power`` < 1 flattens the distribution the way a sampler at a temperature above 1 (or an
    NQS early in training, label-smoothed) spreads its samples over more strings.
    """
    from hinqs.io.determinants import hartree_fock_strings
    from hinqs.io.hamiltonian import load_hamiltonian
    from hinqs.subspace.expansion import _pt2_scores, excitations

    ham = load_hamiltonian(ham_dir, mmap=False)
    hf_a, hf_b = hartree_fock_strings(ham.norb, ham.nelec)
    hf = np.array([hf_a], np.uint64)
    candidates = excitations(hf, ham.norb)
    scores, _ = _pt2_scores(ham.hcore, ham.eri, ham.nelec, hf, np.array([hf_b], np.uint64), np.ones((1, 1)), candidates)
    keep = scores > 0
    strings = np.concatenate([hf, candidates[keep]])
    weight = scores[keep] ** power
    prob = np.concatenate([[p_hf], (1 - p_hf) * weight / weight.sum()])
    return strings, prob


def draw_pool(strings: np.ndarray, prob: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` samples (alpha, beta drawn independently); unique determinants with counts."""
    rng = np.random.default_rng(seed)
    a = strings[rng.choice(len(strings), size=n, p=prob)]
    b = strings[rng.choice(len(strings), size=n, p=prob)]
    pairs, counts = np.unique(np.stack([a, b], axis=1), axis=0, return_counts=True)
    return pairs[:, 0].copy(), pairs[:, 1].copy(), counts


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the pool's workers, once shut down).

    On a shared machine wall time measures the neighbours; CPU time measures the work.
    """
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_layout(ham_dir, pool, samples, args, solver, layout) -> dict:
    """One real diagonalize step; wall seconds and what result.json recorded."""
    from hinqs.loop.settings import RunSettings, with_overrides
    from hinqs.sqd.settings import SQDSettings
    from hinqs.sqd.step import run_diagonalization

    workers, threads = (int(x) for x in layout.split("x"))
    executor = "sequential" if workers == 1 and threads == 1 else "process"
    defaults = RunSettings.defaults()
    settings = SQDSettings(
        seed=args.seed,
        iteration=1,
        n_batches=args.batches,
        samples_per_batch=samples,
        max_dimension=args.max_dimension,
        memory_mb=None,
        shrink_to_memory=False,
        solver=with_overrides(defaults.sqd.solver, solver=solver, max_cycle=args.max_cycle, conv_tol=1e-14),
        parallel=with_overrides(
            defaults.parallel, executor=executor, workers=workers, threads_per_worker=threads, retries=0
        ),
    )
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        start, cpu = time.perf_counter(), cpu_seconds()
        result = run_diagonalization(ham_dir, *pool, Path(tmp) / "sqd", settings)
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    batches = result.batches
    return {
        "wall": wall,
        "cpu": cpu,
        "dims": [b["n_determinants"] for b in batches],
        "before": [b["cap"]["dimension_before"] for b in batches],
        "shapes_before": [b["cap"]["shape_before"] for b in batches],
        "seconds": [b["seconds"] for b in batches],
        "rss": [b["peak_rss_mb"] for b in batches],
        "energy": result.energy,
        "workers": workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hamiltonian", default=str(ROOT / ".cache" / "n2_ccpvdz" / "hamiltonian"))
    parser.add_argument("--samples", default="1000,2000,5000", help="samples per batch S")
    parser.add_argument("--layouts", default="1x1,1x2,2x1", help="workers x threads")
    parser.add_argument("--solvers", default="lean,solve_fermion")
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--max-dimension", type=int, default=40_000, help="cap per measured batch")
    parser.add_argument("--max-cycle", type=int, default=6)
    parser.add_argument("--pool-samples", type=int, default=1_000_000)
    parser.add_argument("--p-hf", type=float, default=0.5, help="probability of the HF string per spin")
    parser.add_argument("--power", type=float, default=0.0, help="string weight = PT2 score ** power")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--full-layouts-at", type=int, default=2000, help="run every layout/solver only at this S")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--dimensions-only", action="store_true", help="print the dimension table and stop")
    parser.add_argument("--scratch", default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import logging

    logging.getLogger("hinqs.sqd").setLevel(logging.ERROR)  # the cap and the fixed cycle count are intended here

    from hinqs.sqd.batches import canonical_subspace, form_batches

    ham_dir = hamiltonian(Path(args.hamiltonian))
    strings, prob = string_distribution(ham_dir, args.p_hf, args.power)
    pool = draw_pool(strings, prob, args.pool_samples, args.seed)
    print(f"# N2/cc-pVDZ fc2 (26 orbitals, (5,5)); {len(strings)} strings (HF + S/D of HF, "
          f"weight PT2^{args.power}, p_HF {args.p_hf}); "
          f"pool of {len(pool[0]):,} unique determinants from {args.pool_samples:,} samples; "
          f"{args.batches} batches; Davidson fixed at {args.max_cycle} cycles; cap {args.max_dimension:,}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print("\n| S | K_a x K_b (uncapped) | dimension uncapped | measured dimension |")
    print("|---|---|---|---|")
    canonical = canonical_subspace(*pool)
    sizes = [int(s) for s in args.samples.split(",")]
    for s in sizes:
        for b in form_batches(
            canonical, (5, 5), n_batches=args.batches, samples_per_batch=s, seed=args.seed, iteration=1
        ):
            print(f"| {s:,} | {b.shape[0]} x {b.shape[1]} | {b.n_determinants:,} | "
                  f"{min(b.n_determinants, args.max_dimension):,} |")  # fmt: skip
    if args.dimensions_only:
        return
    print(
        "\n| S | solver | layout | wall s | speed-up | CPU s | batch wall s (mean) | us/det/cycle wall "
        "| us/det/cycle CPU | RSS/worker MB | RSS/node MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for s in sizes:
        for solver in args.solvers.split(","):
            layouts = args.layouts.split(",") if s == args.full_layouts_at else [args.layouts.split(",")[-1]]
            if s != args.full_layouts_at and solver != args.solvers.split(",")[0]:
                continue
            base = None
            for layout in layouts:
                row = run_layout(ham_dir, pool, s, args, solver, layout)
                base = base or row["wall"]
                unit = np.mean([t / (d * args.max_cycle) for t, d in zip(row["seconds"], row["dims"], strict=True)])
                per_worker = max(row["rss"])
                node = per_worker * min(row["workers"], args.batches)
                cpu_unit = row["cpu"] / (sum(row["dims"]) * args.max_cycle)
                row.update(S=s, solver=solver, layout=layout, speedup=base / row["wall"], us_per_det_cycle=unit * 1e6)
                row.update(us_per_det_cycle_cpu=cpu_unit * 1e6)
                rows.append(row)
                print(
                    f"| {s:,} | {solver} | {layout} | {row['wall']:.1f} | {base / row['wall']:.2f} | "
                    f"{row['cpu']:.1f} | {np.mean(row['seconds']):.1f} | {unit * 1e6:.1f} | {cpu_unit * 1e6:.1f} | "
                    f"{per_worker:.0f} | {node:.0f} |",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
