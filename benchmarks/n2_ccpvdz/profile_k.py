"""Where a 52-qubit solve spends its time, at K = 600, 1,000, 1,500 strings per spin.

From a finished N2/cc-pVDZ run (its Hamiltonian and the ground state of an iteration), the K
heaviest strings per spin span the product space a batch of that size solves. For each K
and thread count, the pieces of PySCF's selected-CI Davidson are timed separately:

``link``     ``gen_linkstr`` (the string-excitation tables, once per solve);
``hdiag``    the Hamiltonian's diagonal (the preconditioner);
``H.c``      one ``contract_2e`` (a Davidson cycle is one of these plus small BLAS work);
``solve``    the whole warm-started solve (``kernel_fixed_space`` from the state restricted
             to the K strings) and its cycles;
``rss``      the process's peak resident memory after the solve (MB).

    python benchmarks/n2_ccpvdz/profile_k.py results_derived/n2_ccpvdz --iteration 5 --threads 1,2
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from hinqs.io.files import read_state
from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.io.layout import SystemLayout


def _heaviest(strings: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray:
    return np.sort(strings[np.argsort(-weight, kind="stable")[:k]])


def profile(hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], state, k: int) -> dict[str, float]:
    """Timings of one product space of the K heaviest strings per spin (see the module docstring)."""
    from pyscf import ao2mo
    from pyscf.fci import direct_spin1, selected_ci

    norb = hcore.shape[0]
    prob = state.amplitudes**2
    strs_a = _heaviest(state.strs_a, prob.sum(axis=1), k)
    strs_b = _heaviest(state.strs_b, prob.sum(axis=0), k)
    guess = state.on(strs_a, strs_b)
    strs = (strs_a.astype(np.int64), strs_b.astype(np.int64))
    solver = selected_ci.SelectedCI()
    out: dict[str, float] = {"dimension": float(len(strs_a) * len(strs_b))}
    t = time.perf_counter()
    link = solver.gen_linkstr(norb, nelec, tril=True, ci_strs=strs)
    out["link"] = time.perf_counter() - t
    t = time.perf_counter()
    selected_ci.make_hdiag(hcore, eri, strs, norb, nelec)
    out["hdiag"] = time.perf_counter() - t
    h2e = ao2mo.restore(1, direct_spin1.absorb_h1e(hcore, eri, norb, nelec, 0.5), norb)
    vec = selected_ci._as_SCIvector(np.ascontiguousarray(guess), strs)
    t = time.perf_counter()
    solver.contract_2e(h2e, vec, norb, nelec, link)
    out["hc"] = time.perf_counter() - t
    cycles = []
    t = time.perf_counter()
    selected_ci.kernel_fixed_space(
        solver, hcore, eri, norb, nelec, strs, ci0=vec, tol=1e-8, max_cycle=60,
        callback=lambda envs: cycles.append(envs["icyc"]),
    )  # fmt: skip
    out["solve"] = time.perf_counter() - t
    out["cycles"] = float(len(cycles) + 1)
    out["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system_dir", type=Path, help="results/<system> of a finished N2/cc-pVDZ run")
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--k", default="600,1000,1500")
    parser.add_argument("--threads", default="1")
    args = parser.parse_args()
    from pyscf import lib

    layout = SystemLayout(args.system_dir)
    ham = load_hamiltonian(layout.hamiltonian)
    hcore, eri = np.asarray(ham.hcore), np.asarray(ham.eri)
    nelec = (int(ham.nelec[0]), int(ham.nelec[1]))
    state = read_state(layout.iteration(args.iteration).state, sort=True)
    print("| K | dimension | threads | link s | hdiag s | H.c s | solve s | cycles | s/cycle | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k in (int(v) for v in args.k.split(",")):
        for threads in (int(v) for v in args.threads.split(",")):
            lib.num_threads(threads)
            r = profile(hcore, eri, nelec, state, k)
            print(
                f"| {k} | {r['dimension']:,.0f} | {threads} | {r['link']:.1f} | {r['hdiag']:.1f} | {r['hc']:.1f} | "
                f"{r['solve']:.1f} | {r['cycles']:.0f} | {r['solve'] / r['cycles']:.1f} | {r['rss']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
