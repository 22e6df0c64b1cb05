"""One batch's direct solve spread over MPI ranks: seconds per H C and per solve, memory per rank, bits.

N2/cc-pVDZ at R = 2.118 bohr, two 1s frozen (10 electrons in 26 orbitals), MP2 natural
orbitals, the ``hfsd`` subspaces of ``bench_hamiltonian.py`` (HF, its singles, seeded
doubles; the same K strings for both spins). For every (K, ranks) a fresh
``mpiexec -n RANKS`` job, one numba/BLAS thread per rank, builds the operator on every rank
(:class:`hinqs.sqd.distributed.SpreadHamiltonian`: each rank holds its rows of the
vectors), times one H C on its rows (with the exchange of the halo rows) and then the
``direct`` solve spread over the ranks (``conv_tol`` 1e-8, from the lowest diagonal) up to
``--max-cycle`` Davidson cycles, without the solver's continuation past max_cycle (a few
cycles at 4,000 strings, where a whole solve takes long on 2 cores: the table says whether
it converged). Peak RSS per rank (VmHWM) and the RSS before the solve (the libraries and
the operator's tables). "bits = 1 rank": the row's H C (gathered), energy and amplitudes
have the sha256 of the 1-rank row's; every rank of a row must get the same energy.

    python benchmarks/bench_ranks.py --sizes 1500 --ranks 1,2
    python benchmarks/bench_ranks.py --sizes 1500,4000 --ranks 1,2 --max-cycle 60,3
    # a cluster node or an allocation (srun needs no --mpiexec when launched inside the job):
    python benchmarks/bench_ranks.py --sizes 1500,4000 --ranks 4,8,16,32,64 --mpiexec "srun -n {ranks}"
    # each rank's rows on a GPU of its own (sqd.device cuda; torch-cpu: torch's CPU build):
    python benchmarks/bench_ranks.py --sizes 4000 --ranks 1,2,4 --device cuda

With ``--device`` other than ``cpu`` the rows run on the torch kernel
(:class:`hinqs.kernel.torch_kernel.TorchRowBlock`), unmirrored, and each row adds the
device and every rank's peak device memory; their bits are the torch rows', equal to the
numba rows' to rounding only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_hamiltonian import SYSTEM, _hfsd_strings, _peak_rss_mb


def _sha(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _rss_mb() -> float:
    """Resident memory now (MB), from /proc/self/statm's second field (pages)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(args: argparse.Namespace) -> None:
    """Every rank: one product on its rows, then the spread solve; rank 0 prints the row as JSON."""
    from mpi4py import MPI

    from hinqs.io.hamiltonian import load_hamiltonian
    from hinqs.kernel import ProductHamiltonian
    from hinqs.loop.settings import RunSettings, with_overrides
    from hinqs.sqd import davidson
    from hinqs.sqd.distributed import SpreadHamiltonian
    from hinqs.sqd.solvers import solve_on_operator
    from hinqs.threads import thread_limit

    davidson.CONTINUE_FACTOR = 1  # --max-cycle is the whole budget here: no continuation past it
    comm = MPI.COMM_WORLD
    ham = load_hamiltonian(args.hamiltonian)
    strings = _hfsd_strings(ham.norb, ham.nelec[0], args.k, seed=args.k)
    products: list[float] = []

    class Timed(SpreadHamiltonian):
        def apply(self, c: np.ndarray) -> np.ndarray:
            start = time.perf_counter()
            out = super().apply(c)
            products.append(time.perf_counter() - start)
            return out

    def build(a: np.ndarray, b: np.ndarray, mirrored: bool = True) -> Timed:
        """The solver's operator: a closed shell over one string set is mirrored (sqd.spin_symmetry)."""
        return Timed(comm, lambda: ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, a, b), mirrored=mirrored,
                     device=args.device)  # fmt: skip

    settings = with_overrides(RunSettings.defaults().sqd.solver, conv_tol=1e-8, max_cycle=args.max_cycle,
                              device=args.device)  # fmt: skip
    with thread_limit(1, load_pyscf=False):  # as the distributed executor's direct solve
        small = build(strings[:40], strings[:40])  # numba's compile, outside the timings
        small.apply(np.ones(small.space.local_shape))
        products.clear()
        start = time.perf_counter()
        op = build(strings, strings)
        built = time.perf_counter() - start
        lo, hi = op.rows
        n = len(strings)
        rows, cols = np.arange(lo, hi, dtype=np.float64)[:, None], np.arange(n, dtype=np.float64)[None, :]
        vector = np.sin(0.7 * (rows * n + cols)) + np.sin(0.7 * (cols * n + rows))  # this rank's rows, C = C^T
        sigma = op.apply(vector)
        whole = op.gather(sigma)
        hc_sha = _sha(whole) if comm.Get_rank() == 0 else ""
        del vector, sigma, whole, op
        rss_before = _rss_mb()
        comm.Barrier()
        start = time.perf_counter()
        result = solve_on_operator(build, strings, strings, ham.norb, ham.nelec, settings)
        comm.Barrier()
        solved = time.perf_counter() - start
    row = {
        "k": len(strings),
        "ranks": comm.Get_size(),
        "build_s": built,
        "hc_s": products[0],
        "hc_mean_s": float(np.mean(products[1:])),
        "solve_s": solved,
        "products": len(products) - 1,
        "converged": result.converged,
        "energy": result.energy + ham.ecore,
        "hc_sha": hc_sha,
        "state_sha": _sha(np.array([result.energy]), result.state.amplitudes),
        "device": args.device,
    }
    mine = {"peak_rss_mb": _peak_rss_mb(), "rss_before_mb": rss_before, "energy": row["energy"],
            "device_mb": _device_peak_mb(small.device)}  # fmt: skip
    rows = comm.gather(mine, root=0)
    if comm.Get_rank() == 0:
        same = all(r["energy"] == row["energy"] for r in rows)
        row.update(peak_rss_mb=[round(r["peak_rss_mb"]) for r in rows],
                   rss_before_mb=[round(r["rss_before_mb"]) for r in rows], ranks_agree=same,
                   device_mb=[r["device_mb"] for r in rows])  # fmt: skip
        print(json.dumps(row), flush=True)


def _device_peak_mb(device: object) -> float | None:
    """Peak device memory torch allocated on this rank's GPU (MB); None off a GPU."""
    if device is None or getattr(device, "type", "") != "cuda":
        return None
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 2**20)


def _run_row(args: argparse.Namespace, hamiltonian: Path, k: int, ranks: int, max_cycle: int) -> dict:
    launcher = shlex.split(args.mpiexec.format(ranks=ranks))
    command = [*launcher, sys.executable, __file__, "--worker", "--hamiltonian", str(hamiltonian)]
    command += ["--k", str(k), "--max-cycle", str(max_cycle), "--device", args.device]
    env = {**os.environ, **{name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}}
    if args.mmap_threshold:  # glibc: a fixed threshold, so freed vectors go back to the OS (RSS = what is held)
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"k": k, "ranks": ranks, "error": done.stderr.strip()[-300:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _device_cell(row: dict) -> str:
    """The row's device, with every rank's peak device memory where it ran on a GPU."""
    peaks = [m for m in row.get("device_mb") or [] if m is not None]
    device = row.get("device", "cpu")
    return f"{device} ({', '.join(str(m) for m in peaks)})" if peaks else device


def _table(rows: list[dict]) -> str:
    lines = [
        "| K per spin | determinants | ranks | build s | H C s | H C s (mean in solve) | products | solve s | "
        "converged | E (Ha) | RSS MB before the solve | peak RSS MB per rank | peak / 1 rank's | ranks agree | "
        "bits = 1 rank | device (peak MB per rank) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    one = {r["k"]: r for r in rows if r.get("ranks") == 1 and "error" not in r}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['k']:,} | | {r['ranks']} | failed: {r['error']} |")
            continue
        ref = one.get(r["k"])
        same = ""
        if ref is not None:
            same = "yes" if (ref["hc_sha"], ref["state_sha"]) == (r["hc_sha"], r["state_sha"]) else "no"
        rss = ", ".join(str(m) for m in r["peak_rss_mb"])
        before = ", ".join(str(m) for m in r["rss_before_mb"])
        ratio = f"{max(r['peak_rss_mb']) / max(ref['peak_rss_mb']):.2f}" if ref is not None else ""
        lines.append(
            f"| {r['k']:,} | {r['k'] ** 2:,} | {r['ranks']} | {r['build_s']:.2f} | {r['hc_s']:.2f} | "
            f"{r['hc_mean_s']:.2f} | {r['products']} | {r['solve_s']:.1f} | {'yes' if r['converged'] else 'no'} | "
            f"{r['energy']:.8f} | {before} | {rss} | {ratio} | {'yes' if r['ranks_agree'] else 'no'} | {same} | "
            f"{_device_cell(r)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1500", help="K, strings per spin")
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--max-cycle", default="60", help="Davidson cycles per size (one value, or one per size)")
    parser.add_argument("--mpiexec", default=str(Path(sys.executable).with_name("mpiexec")) + " -n {ranks}")
    parser.add_argument("--out", help="write the rows as JSON lines here")
    parser.add_argument("--device", default="cpu", help="sqd.device of the ranks' rows: cpu (numba), cuda, torch-cpu")
    parser.add_argument("--mmap-threshold", type=int, default=0,
                        help="glibc's MALLOC_MMAP_THRESHOLD_ for the ranks (0: glibc's dynamic default)")  # fmt: skip
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hamiltonian", help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.max_cycle = int(args.max_cycle)
        worker(args)
        return
    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.config import complete_system
    from hinqs.io.hamiltonian import write_hamiltonian
    from hinqs.threads import thread_limit

    sizes = [int(s) for s in args.sizes.split(",")]
    cycles = [int(c) for c in args.max_cycle.split(",")]
    cycles = cycles * len(sizes) if len(cycles) == 1 else cycles
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        with thread_limit(1):  # PySCF on one thread: the same integrals (and strings) at every invocation
            ints, _ = integrals_from_geometry(complete_system(SYSTEM))
        hamiltonian = write_hamiltonian(Path(tmp) / "ham", ints.hcore, ints.eri, ints.nelec, ints.ecore, {})
        for k, max_cycle in zip(sizes, cycles, strict=True):
            for ranks in (int(r) for r in args.ranks.split(",")):
                rows.append(_run_row(args, hamiltonian, k, ranks, max_cycle))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                if args.out:
                    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(_table(rows))
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end; on 4-64 ranks (e.g. inside a SLURM allocation):")
    print(f"  python benchmarks/bench_ranks.py --sizes {args.sizes} --ranks 4,8,16,32,64 --mpiexec 'srun -n {{ranks}}'")


if __name__ == "__main__":
    main()
