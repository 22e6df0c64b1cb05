"""Run the HI-NQS-SQD loop twice with one seed — sequential and parallel — and compare.

Path A solves the batches one after another in-process with one thread; path B uses the
config's executor, workers and threads. Writes OUT/report.json and OUT/report.txt (the
largest deviation of each quantity) and exits 0 only when the paths agree: bit for bit
with one thread per solve, energies within 1e-10 Ha when thread counts differ. Otherwise
it names the first iteration and quantity that diverged and exits 1.
"""

from __future__ import annotations

import argparse

COMMAND = "verify"
HELP = "run the loop sequentially and in parallel with one seed and compare everything"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config (YAML)")
    parser.add_argument("--system", help="system name (needed when the config has several)")
    parser.add_argument("--out", default="results/verify", help="folder for both runs and the report")
    parser.add_argument("--iterations", type=int, help="stop after this many iterations (default: iterations.max)")
    parser.add_argument(
        "--parallel-seed",
        type=int,
        help="run the parallel path with another seed (a deliberate divergence, to check the check)",
    )


def run(args: argparse.Namespace) -> int:
    import os
    import shutil
    from pathlib import Path

    import yaml

    from hinqs.atomic import write_json, write_text
    from hinqs.config import get_system, load_config
    from hinqs.errors import InputError, StepFailed
    from hinqs.pipeline import run_system
    from hinqs.verify import compare_runs, format_table, report

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the in-process reference path: one thread
    config = load_config(args.config)
    system = get_system(config, args.system)["name"]
    parallel = config["parallel"]
    if parallel["executor"] == "sequential":
        raise InputError("parallel.executor is 'sequential': there is no parallel path to verify")
    if parallel["executor"] == "mpi":
        raise InputError(
            "hinqs verify runs its paths in-process and cannot start MPI ranks; verify with executor 'process'"
        )
    max_iterations = args.iterations or config["iterations"]["max"]
    if max_iterations < 1:
        raise InputError("--iterations must be at least 1")
    out = Path(args.out)
    for name in ("sequential", "parallel"):
        shutil.rmtree(out / name, ignore_errors=True)

    # Both paths share one Hamiltonian: integrals are computed once (design notes: the SCF of
    # degenerate molecules depends on thread counts), exactly as the workflow does.
    ham = out / "hamiltonian" / system
    from hinqs.prepare import prepare_system

    prepare_system(get_system(config, system), config["references"], ham)

    configs = {"sequential": config, "parallel": config}
    if args.parallel_seed is not None:
        configs["parallel"] = {**config, "seed": args.parallel_seed}
    runs = {}
    for name, cfg in configs.items():
        cfg_path = out / name / "config.yaml"
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        write_text(cfg_path, yaml.safe_dump(cfg, sort_keys=True))
        extra = ["--executor", "sequential", "--threads-per-worker", "1"] if name == "sequential" else []
        runs[name] = run_system(
            cfg_path, system, out / name, max_iterations=max_iterations, diagonalize_args=extra, hamiltonian_dir=ham
        )
    exact = parallel["threads_per_worker"] == 1
    seq, par = runs["sequential"], runs["parallel"]
    comparisons = compare_runs(seq.system_dir, par.system_dir, min(seq.iterations, par.iterations), exact=exact)
    paths = {
        "sequential": {"executor": "sequential", "workers": 1, "threads_per_worker": 1},
        "parallel": {k: parallel[k] for k in ("executor", "workers", "threads_per_worker")},
        "exact": exact,
    }
    data = report(comparisons, (seq.iterations, par.iterations), paths)
    write_json(out / "report.json", data)
    table = format_table(data)
    write_text(out / "report.txt", table + "\n")
    print(table)
    if not data["identical"]:
        first = data["first_divergence"]
        where = f"iteration {first['iteration']}, {first['quantity']}" if first else "the number of iterations"
        raise StepFailed(f"the parallel path diverged from the sequential path at {where}")
    return 0
