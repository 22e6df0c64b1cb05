"""H C over a 52-qubit product space: hinqs' kernel against PySCF's selected-CI contraction.

N2/cc-pVDZ at R = 2.118 bohr, two 1s frozen (10 electrons in 26 orbitals), MP2 natural
orbitals (hinqs' own prepare path). Subspaces of K strings per spin (the same set for both
spins, closed shell):

``hfsd``   HF, all its singles, and random doubles (seeded) up to K (past HF's doubles, random
           doubles of its singles too);
``run``    the K heaviest strings of a real run's ground state (``--state``), in that run's
           Hamiltonian, its amplitudes restricted to them as the vector and the warm start.

For every (subspace, K, kernel, threads) a fresh process (its own peak RSS, its thread count
set before NumPy loads) times one H C and, up to ``--solve-max-k``, one whole solve with
that kernel's solver (``direct`` for the kernel, ``lean`` for PySCF's ``contract_2e``, and
qiskit-addon-sqd's ``solve_fermion``, whose H C is the same contraction), warm-started from the run's state when
there is one (otherwise from the lowest diagonal), ``conv_tol`` 1e-8, at most 60 cycles
(PySCF's solvers on 1 thread only: each takes minutes here).
"bits 1=2" says whether 1 and 2 threads gave the same H C (sha256 of the array) and the same
energy. Ratios are per core: both kernels run one after another in the same invocation.
``direct`` is the product as the ``direct`` solver applies it to a singlet's symmetric
vector (one string set for both spins, ``sqd.spin_symmetry``: the upper triangle, mirrored);
``direct-unmirrored`` every element (the solver before the mirror, ``spin_symmetry: false``).
The vectors are made symmetric for both. At the 52-qubit loop's size, side by side:

    python benchmarks/bench_hamiltonian.py --sizes 2800 --threads 1,2 \
        --kernels direct-unmirrored,direct --solve-max-k 2800

    python benchmarks/bench_hamiltonian.py --sizes 400,1000,1500,3000 --threads 1,2 \\
        --state results_derived/n2_ccpvdz/iter_3/sqd/state.npz

``--baseline COMMIT`` adds the ``baseline`` rows: this repository's ``direct`` solver as it was
at ``COMMIT`` (a git worktree of it, imported first in the row's process), on the same
subspace, vector and warm start, in the same invocation: the side-by-side measure of what a
change did to the whole solve (issue 30's "today's" solver is the commit it was filed at):

    python benchmarks/bench_hamiltonian.py --sizes '' --run-sizes 2800 --threads 1 \
        --kernels baseline,direct --baseline db785bf --solve-max-k 2800 --state <run>/iter_006/sqd/state.npz

Every solving row first solves a 40-string corner of its subspace, so numba's compilation
(cold in a fresh worktree) is not timed.

``direct-torch`` is the torch kernel (:mod:`hinqs.kernel.torch_kernel`) on ``--device``
(``cpu``: torch's CPU build, the GPU formulation on the host; ``cuda``: the GPU), one H C
timed after a warm-up product (cuBLAS's initialisation is not the kernel's), its solve the
``direct`` solver with that ``sqd.device``; on a GPU the row adds the device's peak memory.
On a GPU node:

    python benchmarks/bench_hamiltonian.py --sizes 400,1500,3000 --threads 1 \\
        --kernels direct,direct-torch --device cuda --solve-max-k 3000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SYSTEM = {
    "name": "n2_ccpvdz",
    "geometry": "N 0 0 0; N 0 0 2.118",
    "unit": "bohr",
    "basis": "cc-pvdz",
    "frozen_core": 2,
    "orbitals": "mp2",
}
KERNEL_SOLVER = {
    "direct": "direct",
    "direct-unmirrored": "direct",
    "baseline": "direct",
    "direct-torch": "direct",
    "contract_2e": "lean",
    "solve_fermion": "solve_fermion",
}


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _hfsd_strings(norb: int, nel: int, k: int, seed: int) -> np.ndarray:
    from hinqs.io.determinants import hartree_fock_strings
    from hinqs.subspace.expansion import excitations

    hf = np.array([hartree_fock_strings(norb, (nel, nel))[0]], np.uint64)
    singles = excitations(hf, norb, doubles=False)
    doubles = np.setdiff1d(excitations(hf, norb), singles)
    rng = np.random.default_rng(seed)
    if k - 1 - len(singles) > len(doubles):  # past HF's doubles (2,100 at 26 orbitals): the singles' doubles too
        more = np.setdiff1d(excitations(singles, norb), np.concatenate([hf, singles, doubles]))
        doubles = np.concatenate([doubles, rng.choice(more, k - 1 - len(singles) - len(doubles), replace=False)])
    chosen = rng.choice(doubles, max(0, k - 1 - len(singles)), replace=False)
    return np.sort(np.concatenate([hf, singles, chosen])).astype(np.int64)


def _subspace(kind: str, ham, k: int, state_path: str | None):
    """Strings per spin, the vector to multiply and the warm start (None: cold)."""
    if kind == "hfsd":
        strings = _hfsd_strings(ham.norb, ham.nelec[0], k, seed=k)
        vector = np.random.default_rng(k).standard_normal((len(strings), len(strings)))
        vector = vector + vector.T  # a singlet's symmetry, which the mirrored product assumes
        # np.sum's pairwise sum, not BLAS's norm: the same vector whatever the process's BLAS threads
        return strings, vector / np.sqrt(np.sum(vector * vector)), None
    from hinqs.io.files import read_state

    state = read_state(state_path, sort=True)
    prob = state.amplitudes**2
    weight = prob.sum(axis=1) + prob.sum(axis=0)  # closed shell: one string set for both spins
    strings = np.sort(state.strs_a[np.argsort(-weight, kind="stable")[:k]]).astype(np.int64)
    guess = state.on(strings.astype(np.uint64), strings.astype(np.uint64))
    guess = guess + guess.T  # symmetric to the last bit, as the mirrored product assumes
    return strings, guess / np.sqrt(np.sum(guess * guess)), guess


def _contract_2e(ham, strings: np.ndarray, vector: np.ndarray):
    from pyscf import ao2mo
    from pyscf.fci import direct_spin1, selected_ci

    norb, nelec = ham.norb, tuple(ham.nelec)
    strs = (strings, strings)
    h2e = ao2mo.restore(1, direct_spin1.absorb_h1e(ham.hcore, ham.eri, norb, nelec, 0.5), norb)
    link = selected_ci.SelectedCI().gen_linkstr(norb, nelec, tril=True, ci_strs=strs)
    start = time.perf_counter()
    out = selected_ci.contract_2e(h2e, selected_ci._as_SCIvector(vector, strs), norb, nelec, link)
    return np.asarray(out), time.perf_counter() - start


def _direct(ham, strings: np.ndarray, vector: np.ndarray, mirrored: bool):
    """One H C as the direct solver applies it: the upper triangle mirrored (``sqd.spin_symmetry``,
    the default for one string set) or, ``direct-unmirrored``, every element (the solver before it)."""
    from hinqs.kernel import ProductHamiltonian
    from hinqs.sqd.solvers import WholeOperator

    small = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, strings[:40], strings[:40])
    WholeOperator(small, mirrored).apply(np.ones((40, 40)))  # JIT
    start = time.perf_counter()
    op = WholeOperator(ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, strings, strings), mirrored)
    built = time.perf_counter() - start
    start = time.perf_counter()
    out = op.apply(vector)
    return out, time.perf_counter() - start, built


def _baseline(ham, strings: np.ndarray, vector: np.ndarray):
    """One H C through the baseline commit's ``ProductHamiltonian.apply`` (its own API: no WholeOperator)."""
    from hinqs.kernel import ProductHamiltonian

    ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, strings[:40], strings[:40]).apply(np.ones((40, 40)))  # JIT
    start = time.perf_counter()
    op = ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, strings, strings)
    built = time.perf_counter() - start
    start = time.perf_counter()
    out = op.apply(vector)
    return out, time.perf_counter() - start, built


def _solver_settings(kernel: str, device: str):
    """The solver settings of a row: ``conv_tol`` 1e-8, 60 cycles; the mirror off for
    ``direct-unmirrored``; the baseline commit's own settings module (it had no mirror)."""
    try:
        from hinqs.loop.settings import RunSettings, with_overrides
    except ImportError:  # commits before the loop's modules moved (d2a6ee1)
        from hinqs.settings import RunSettings, with_overrides
    changes = {"solver": KERNEL_SOLVER[kernel], "conv_tol": 1e-8, "max_cycle": 60, "device": device}
    if kernel != "baseline":
        changes["spin_symmetry"] = kernel != "direct-unmirrored"
    return with_overrides(RunSettings.defaults().sqd.solver, **changes)


def _direct_torch(ham, strings: np.ndarray, vector: np.ndarray, device: str):
    """One H C on the torch kernel after a warm-up product; the build includes the numba tables."""
    import torch

    from hinqs.kernel.torch_kernel import TorchProductHamiltonian, deterministic_cuda

    if device.startswith("cuda"):
        deterministic_cuda()
    small = TorchProductHamiltonian.from_integrals(ham.hcore, ham.eri, ham.nelec, strings[:40], strings[:40], device)
    small.apply(np.ones((40, 40)))  # numba's JIT and torch's first call
    start = time.perf_counter()
    op = TorchProductHamiltonian.from_integrals(ham.hcore, ham.eri, ham.nelec, strings, strings, device)
    built = time.perf_counter() - start
    op.apply(vector)  # warm-up at this size (cuBLAS picks its kernels; the caching allocator fills)
    start = time.perf_counter()
    out = op.apply(vector)  # NumPy out: the device has finished
    seconds = time.perf_counter() - start
    extra = {"chunks": op.chunks, "estimated_device_mb": round(op.estimated_mb(), 1)}
    if device.startswith("cuda"):
        extra["device_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        extra["gpu"] = torch.cuda.get_device_name()
    return out, seconds, built, extra


def worker(args: argparse.Namespace) -> None:
    """One row: H C (and a whole solve) in this process, on ``--threads`` threads; prints JSON."""
    from hinqs.io.hamiltonian import load_hamiltonian
    from hinqs.sqd.solvers import solve
    from hinqs.threads import thread_limit

    ham = load_hamiltonian(args.hamiltonian)
    strings, vector, guess = _subspace(args.kind, ham, args.k, args.state)
    row = {"kind": args.kind, "k": len(strings), "kernel": args.kernel, "threads": args.threads}
    with thread_limit(args.threads):
        if args.kernel in ("direct", "direct-unmirrored"):
            out, seconds, row["build_s"] = _direct(ham, strings, vector, args.kernel == "direct")
        elif args.kernel == "baseline":
            out, seconds, row["build_s"] = _baseline(ham, strings, vector)
            row["commit"] = args.baseline
        elif args.kernel == "direct-torch":
            out, seconds, row["build_s"], extra = _direct_torch(ham, strings, vector, args.device)
            row.update(device=args.device, **extra)
        else:
            out, seconds = _contract_2e(ham, strings, vector)
        row.update(hc_s=seconds, hc_sha=hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest()[:16])
        if args.solve:
            device = ("torch-cpu" if args.device == "cpu" else args.device) if args.kernel == "direct-torch" else "cpu"
            settings = _solver_settings(args.kernel, device)
            corner = strings[:40]
            solve(corner, corner, ham.hcore, ham.eri, tuple(ham.nelec), settings)  # compiles what the solve adds
            start = time.perf_counter()
            result = solve(strings, strings, ham.hcore, ham.eri, tuple(ham.nelec), settings, guess)
            row.update(solve_s=time.perf_counter() - start, energy=result.energy + ham.ecore)
            row.update(converged=result.converged, residual=result.residual_norm)
    row["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(row), flush=True)


def _state_hamiltonian(state: Path) -> Path:
    """The Hamiltonian folder beside a run's state whose integrals the state was solved in (its
    ``hamiltonian`` id: prepare's orbitals or the natural-orbital turn's): the subspace is solved in
    that run's own orbitals, not a fresh prepare's (N2's degenerate pi orbitals rotate between SCFs)."""
    ident = str(np.load(state)["hamiltonian"])
    for folder in sorted(state.parents[2].glob("hamiltonian*")):
        sha = json.loads((folder / "meta.json").read_text())["sha256"]
        if f"{sha['hcore.npy']}:{sha['eri.npy']}" == ident:
            return folder
    raise SystemExit(f"{state}: no Hamiltonian folder beside it has the integrals it was solved in")


def _baseline_tree(commit: str) -> Path:
    """A git worktree of this repository at ``commit`` (made once, kept for its numba cache)."""
    repo = Path(__file__).resolve().parents[1]
    tree = Path(tempfile.gettempdir()) / f"hinqs-baseline-{commit}"
    if not (tree / "src" / "hinqs").is_dir():
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), commit], check=True,
                       capture_output=True)  # fmt: skip
    return tree


def _run_row(args, hamiltonian: Path, kind: str, k: int, kernel: str, threads: int) -> dict:
    ours = kernel.startswith("direct") or kernel == "baseline"
    solve = k <= (args.solve_max_k if ours else args.reference_solve_max_k)
    solve = solve and (ours or threads == 1)  # PySCF's solves once: minutes each on 2 cores
    if kernel == "solve_fermion" and not solve:
        return {}
    command = [sys.executable, __file__, "--worker", "--hamiltonian", str(hamiltonian), "--kind", kind]
    command += ["--k", str(k), "--kernel", kernel, "--threads", str(threads)]
    command += ["--state", args.state or "", "--device", args.device] + (["--solve"] if solve else [])
    command += ["--baseline", args.baseline or ""]
    env = {**os.environ, **{name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    if kernel == "baseline":  # the baseline commit's package shadows this checkout's
        env["PYTHONPATH"] = os.pathsep.join([str(_baseline_tree(args.baseline) / "src"), env.get("PYTHONPATH", "")])
    env["NUMBA_NUM_THREADS"] = str(threads)
    if kernel == "direct-torch":  # torch's OpenMP threads wait passively, as in hinqs' workers (hinqs.sqd.worker):
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # spinning ones made 2 threads 4x slower than 1 on the shared VM
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"kind": kind, "k": k, "kernel": kernel, "threads": threads, "error": done.stderr.strip()[-300:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    lines = [
        "| subspace | K per spin | determinants | kernel | threads | H C s | us/det | whole solve s | "
        "E (Ha) | peak RSS MB | bits 1=2 | ratio at equal threads |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r["kind"], r["k"], r["kernel"], r["threads"]): r for r in rows if "error" not in r}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['kind']} | {r['k']} | | {r['kernel']} | {r['threads']} | failed: {r['error']} |")
            continue
        dets = r["k"] ** 2
        one, two = by_key.get((r["kind"], r["k"], r["kernel"], 1)), by_key.get((r["kind"], r["k"], r["kernel"], 2))
        same = ""
        if one and two:
            same = "yes" if one["hc_sha"] == two["hc_sha"] and one.get("energy") == two.get("energy") else "no"
        ref = by_key.get((r["kind"], r["k"], "contract_2e", r["threads"]))
        ref_solve = by_key.get((r["kind"], r["k"], "solve_fermion", r["threads"])) or {}
        ratio = f"{ref['hc_s'] / r['hc_s']:.1f}x" if ref and r["kernel"] == "direct" else ""
        base = by_key.get((r["kind"], r["k"], "baseline", r["threads"]))
        if base and r["kernel"] == "direct" and "solve_s" in base and "solve_s" in r:
            ratio += ("; " if ratio else "") + f"{base['hc_s'] / r['hc_s']:.2f}x at {base['commit']}"
            ratio += f" (solve {base['solve_s'] / r['solve_s']:.2f}x)"
        whole = by_key.get((r["kind"], r["k"], "direct-unmirrored", r["threads"]))
        if whole and r["kernel"] == "direct":  # the mirrored product against the one before it
            ratio += ("; " if ratio else "") + f"{whole['hc_s'] / r['hc_s']:.2f}x unmirrored"
            if "solve_s" in whole and "solve_s" in r:
                ratio += f" (solve {whole['solve_s'] / r['solve_s']:.2f}x)"
        numba = by_key.get((r["kind"], r["k"], "direct", r["threads"]))
        if r["kernel"] == "direct-torch":  # against the numba kernel, and the rate SBD quotes per GPU
            ratio = f"{dets / r['hc_s']:,.3g} det/s on {r.get('gpu', 'torch ' + r['device'])}"
            ratio += f"; {numba['hc_s'] / r['hc_s']:.2f}x numba direct" if numba else ""
        if "solve_s" in ref_solve and "solve_s" in r and r["kernel"] == "direct":
            ratio += f" (solve {ref_solve['solve_s'] / r['solve_s']:.1f}x vs solve_fermion)"
        solve = f"{r['solve_s']:.1f}" if "solve_s" in r else "not run"
        energy = f"{r['energy']:.8f}" if "energy" in r else ""
        lines.append(
            f"| {r['kind']} | {r['k']:,} | {dets:,} | {r['kernel']} | {r['threads']} | {r['hc_s']:.2f} | "
            f"{r['hc_s'] / dets * 1e6:.2f} | {solve} | {energy} | {r['peak_rss_mb']:.0f} | {same} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="400,1000,1500,3000", help="K of the 'hfsd' subspaces ('': none)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--kernels", default="contract_2e,solve_fermion,direct")
    parser.add_argument("--state", help="a run's state.npz: adds the 'run' subspaces")
    parser.add_argument("--run-sizes", default="1500", help="K of the 'run' subspaces (at most the run's strings)")
    parser.add_argument("--reference-max-k", type=int, default=1500, help="largest K for contract_2e")
    parser.add_argument("--solve-max-k", type=int, default=3000, help="largest K solved whole by direct")
    parser.add_argument("--reference-solve-max-k", type=int, default=400, help="largest K solved whole by lean")
    parser.add_argument("--device", default="cpu", help="where direct-torch runs: cpu (torch's CPU build) or cuda")
    parser.add_argument("--baseline", help="a commit whose direct solver the 'baseline' rows run (a git worktree)")
    parser.add_argument("--out", help="write the rows as JSON lines here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hamiltonian", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--kernel", help=argparse.SUPPRESS)
    parser.add_argument("--solve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.threads = int(args.threads)
        args.state = args.state or None
        args.baseline = args.baseline or None
        worker(args)
        return
    from hinqs.chem.integrals import integrals_from_geometry
    from hinqs.config import complete_system
    from hinqs.io.hamiltonian import write_hamiltonian

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        ints, _ = integrals_from_geometry(complete_system(SYSTEM))
        hamiltonian = write_hamiltonian(Path(tmp) / "ham", ints.hcore, ints.eri, ints.nelec, ints.ecore, {})
        kinds = ["hfsd"] + (["run"] if args.state else [])
        for kind in kinds:
            for k in (int(s) for s in (args.sizes if kind == "hfsd" else args.run_sizes).split(",") if s):
                folder = _state_hamiltonian(Path(args.state)) if kind == "run" else hamiltonian
                for kernel in args.kernels.split(","):
                    if kernel == "contract_2e" and k > args.reference_max_k:
                        continue
                    if kernel == "baseline" and not args.baseline:
                        raise SystemExit("the baseline rows need --baseline COMMIT")
                    for threads in (int(t) for t in args.threads.split(",")):
                        row = _run_row(args, folder, kind, k, kernel, threads)
                        if not row:
                            continue
                        rows.append(row)
                        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                        if args.out:
                            Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(_table(rows))


if __name__ == "__main__":
    main()
