"""The PT2 step of a run's state on 1..N MPI ranks (``parallel.executor: distributed``): time, memory, bits.

Each row runs ``hinqs pt2`` as the workflow's rule does (``mpiexec -n RANKS python -m mpi4py -m
hinqs pt2 ...``, or one process for 1 rank) with a config naming the distributed executor, on
the state of a finished run and the Hamiltonian it was solved in, ``--threads`` numba threads
per rank. It prints one table row per rank count: seconds (the step's own clock), the largest
peak RSS of any process the launcher started, E_PT2 and its interval, and whether every number
of pt2.json equals the 1-rank row's (the bits must not depend on the ranks). For example, the
52-qubit run's last state (benchmarks/n2_ccpvdz/README.md):

    python benchmarks/bench_pt2_ranks.py --state <run>/n2_ccpvdz/iter_006/sqd/state.npz \\
        --hamiltonian <run>/n2_ccpvdz/hamiltonian_natural --ranks 1,2 --threads 1

``--device cuda``: the rows on each rank's GPU (``pt2.device``); compare its E_PT2 with a
``--device cpu`` row's (equal to float rounding, not bit for bit).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

NUMBERS = ("e_var", "e_pt2", "e_pt2_ci95", "rows_computed", "draws", "external_determinants", "intruders")


def _mpiexec() -> str:
    local = Path(sys.executable).with_name("mpiexec")
    return str(local) if local.exists() else "mpiexec"


def _row(args: argparse.Namespace, ranks: int, tmp: Path) -> dict:
    config = tmp / f"config_{ranks}.yaml"
    # The step reads the integrals from --hamiltonian and only `pt2` and `parallel` from the config,
    # whose one system is a placeholder the config's check accepts.
    system = {"name": "state", "geometry": "H 0 0 0; H 0 0 0.74", "basis": "sto-3g"}
    config.write_text(yaml.safe_dump({
        "seed": args.seed,
        "systems": [system],
        "parallel": {"executor": "distributed", "workers": ranks, "threads_per_worker": args.threads},
        "pt2": {"max_dimension": args.max_dimension, "relative_error": args.relative_error, "device": args.device},
    }))  # fmt: skip
    out = tmp / f"pt2_{ranks}.json"
    launch = [_mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py"] if ranks > 1 else [sys.executable]
    command = [
        *launch,
        "-m",
        "hinqs",
        "pt2",
        "--config",
        str(config),
        "--hamiltonian",
        args.hamiltonian,
        "--state",
        args.state,
        "--iteration",
        "1",
        "--threads",
        str(ranks * args.threads),
        "--out",
        str(out),
    ]
    # a fresh wrapper per row: its children's peak RSS is this row's alone (the launcher's ranks)
    wrapper = (
        "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"ranks": ranks, "error": done.stderr.strip()[-300:]}
    peak = int(done.stderr.strip().splitlines()[-1])
    record = json.loads(out.read_text())
    return {"ranks": ranks, "threads": args.threads, "peak_mb": peak / 1024, **record}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", required=True, help="a run's sqd/state.npz")
    parser.add_argument("--hamiltonian", required=True, help="the Hamiltonian folder the state was solved in")
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--threads", type=int, default=1, help="numba threads per rank")
    parser.add_argument("--max-dimension", type=int, default=10**9, help="pt2.max_dimension (complete up to it)")
    parser.add_argument("--relative-error", type=float, default=0.005, help="pt2.relative_error of a sampled sum")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--device", default="cpu", help="pt2.device: cpu (numba rows), cuda (each rank's GPU), auto")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in (int(r) for r in args.ranks.split(",")):
            rows.append(_row(args, ranks, Path(tmp)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    first = next((r for r in rows if "error" not in r), None)
    header = "| ranks | threads per rank | seconds | speed-up | peak RSS MB (largest process) | E_PT2 (Ha) |"
    print(header + " 95 % half-width | rows computed | numbers = 1 rank's |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['ranks']} | failed: {r['error']} |")
            continue
        same = "yes" if all(r[k] == first[k] for k in NUMBERS) else "no"
        print(
            f"| {r['ranks']} | {r['threads']} | {r['seconds']:.1f} | {first['seconds'] / r['seconds']:.2f}x | "
            f"{r['peak_mb']:.0f} | {r['e_pt2']:.10f} | {r['e_pt2_ci95']:.1e} | {r['rows_computed']:,} | {same} |"
        )


if __name__ == "__main__":
    main()
