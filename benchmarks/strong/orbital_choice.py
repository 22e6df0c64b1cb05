"""Which orbitals make a strongly correlated state's product space compact? Measured on a run's state.

For one iteration of a finished run (its ``sqd/state.npz`` and the Hamiltonian it was solved
in), the same strings are diagonalised again in three orbital bases, each a rotation of the
active orbitals (core and FCI energies unchanged):

- the orbitals the iteration was solved in (prepare's: UNO by default);
- the natural orbitals of its state (what ``natural_orbitals.after`` turns the loop to);
- orbitals optimised for the subspace energy (as orbital-optimised SQD and SCI-SCF codes do):
  with the state's one- and two-particle densities fixed, the rotation ``exp(K)`` that lowers
  ``sum h'D + 1/2 sum g'P`` (L-BFGS, the gradient by torch's autograd through
  ``matrix_exp``); the same strings re-solved in the rotated integrals, and again from the new
  state's densities, ``--macro`` times. Each step is variational for the fixed strings: the
  state's coefficients on the rotated strings already give the lowered energy.

    python benchmarks/strong/orbital_choice.py <run>/<system> --iteration 3 --reference -5.7776877 --macro 8

prints one line per basis: the energy above the reference (mHa) and the seconds. The
two-particle density is PySCF's ``selected_ci.make_rdm2`` (minutes at a million determinants).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _optimised_rotation(h: np.ndarray, g: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray, int]:
    """The rotation U = exp(K), K antisymmetric, minimising the density-weighted energy; L-BFGS iterations."""
    import torch
    from scipy.linalg import expm
    from scipy.optimize import minimize

    n = h.shape[0]
    upper = np.triu_indices(n, 1)
    rows, cols = torch.tensor(upper[0]), torch.tensor(upper[1])
    th, tg, t1, t2 = (torch.tensor(x) for x in (h, g, d1, d2))

    def energy_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        k = torch.tensor(x, requires_grad=True)
        kappa = torch.zeros(n, n, dtype=torch.float64).index_put((rows, cols), k)
        u = torch.linalg.matrix_exp(kappa - kappa.T)
        hu = u.T @ th @ u
        gu = torch.einsum("pqrs,pa,qb,rc,sd->abcd", tg, u, u, u, u)
        e = (hu * t1).sum() + 0.5 * (gu * t2).sum()
        e.backward()
        return float(e.detach()), k.grad.numpy().copy()

    found = minimize(energy_and_gradient, np.zeros(len(upper[0])), jac=True, method="L-BFGS-B",
                     options={"maxiter": 500, "gtol": 1e-7})  # fmt: skip
    kappa = np.zeros((n, n))
    kappa[upper] = found.x
    return expm(kappa - kappa.T), int(found.nit)


def main() -> None:
    from pyscf.fci import selected_ci

    from hinqs.chem.rotation import natural_rotation, rotate_integrals
    from hinqs.io.hamiltonian import load_hamiltonian
    from hinqs.kernel.density import one_rdm
    from hinqs.loop.settings import RunSettings, with_overrides
    from hinqs.sqd.solvers import solve_direct
    from hinqs.steps.pt2 import checked_state
    from hinqs.threads import thread_limit

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", type=Path, help="<results_dir>/<system> of a finished run")
    parser.add_argument("--iteration", type=int, required=True, help="one solved in prepare's orbitals")
    parser.add_argument("--reference", type=float, required=True, help="exact or published energy (Ha)")
    parser.add_argument("--macro", type=int, default=4, help="orbital steps, each followed by a re-solve")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    ham = load_hamiltonian(args.system / "hamiltonian", mmap=False)
    n, nelec, ecore = ham.norb, tuple(ham.nelec), ham.ecore
    state = checked_state(args.system / f"iter_{args.iteration:03d}" / "sqd" / "state.npz", n, nelec).sorted()
    sa, sb = (np.asarray(s, np.int64) for s in (state.strs_a, state.strs_b))
    settings = with_overrides(RunSettings.defaults().sqd.solver, conv_tol=1e-8, max_cycle=400)

    def above(energy: float) -> str:
        return f"{(energy - args.reference) * 1e3:+.3f} mHa"

    def solve(h: np.ndarray, g: np.ndarray, guess: np.ndarray) -> tuple[float, np.ndarray, float]:
        started = time.perf_counter()
        out = solve_direct(sa, sb, h, g, nelec, settings, guess)
        return out.energy + ecore, out.state.amplitudes, time.perf_counter() - started

    with thread_limit(args.threads):
        h, g = np.asarray(ham.hcore), np.asarray(ham.eri)
        e0, c, seconds = solve(h, g, state.amplitudes)
        print(f"{len(sa)} x {len(sb)} strings, iteration {args.iteration}, reference {args.reference:.8f} Ha")
        print(f"  solved orbitals:      {above(e0)} ({seconds:.0f} s)")
        dm_a, dm_b = one_rdm(c, sa, sb, n, nelec)
        _, u = natural_rotation(dm_a + dm_b)
        e_nat, _, seconds = solve(*rotate_integrals(h, g, u), c)
        print(f"  natural orbitals:     {above(e_nat)} ({seconds:.0f} s)")
        for step in range(1, args.macro + 1):
            started = time.perf_counter()
            vector = selected_ci._as_SCIvector(np.ascontiguousarray(c), (sa, sb))
            d1, d2 = selected_ci.make_rdm1(vector, n, nelec), selected_ci.make_rdm2(vector, n, nelec)
            density_s = time.perf_counter() - started
            u, lbfgs = _optimised_rotation(h, g, d1, d2)
            h, g = rotate_integrals(h, g, u)
            fixed = float(np.einsum("pq,pq", h, d1) + 0.5 * np.einsum("pqrs,pqrs", g, d2)) + ecore
            e_opt, c, seconds = solve(h, g, c)
            print(f"  optimised, step {step}: {above(e_opt)} (the state before its re-solve {above(fixed)}; "
                  f"densities {density_s:.0f} s, {lbfgs} L-BFGS steps, solve {seconds:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
