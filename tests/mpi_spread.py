"""Run under ``mpiexec -n N`` by tests/test_distributed.py: one batch's products and solve spread over the ranks.

``python mpi_spread.py HAMILTONIAN_DIR CASE.npz OUT.npz``: CASE holds ``strs_a``, ``strs_b``
(int64), a coefficient matrix ``c``, ``spin_sq`` (NaN: none) and ``guess`` (empty: none).
Every rank computes its rows of H C and S^2 C from its rows of ``c`` (rank 0 gathers them),
then solves the batch over all ranks and over itself alone (``COMM_SELF``), measuring the
peak bytes numpy allocated during each solve (``tracemalloc``: the Davidson's vectors and
the rows exchanged). Rank 0 writes what it got to OUT, with every rank's peaks and halo,
and whether every rank got the same bits of what every rank returns. The same rows and solve
run once more with the rows on a torch device (``torch-cpu``: torch's CPU build).
"""

from __future__ import annotations

import sys
import tracemalloc
from dataclasses import replace

import numpy as np
from mpi4py import MPI
from sqd_helpers import solver_settings

from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.kernel import ProductHamiltonian
from hinqs.sqd.distributed import SpreadHamiltonian, solve_spread
from hinqs.sqd.registry import TORCH_CPU
from hinqs.threads import thread_limit


def _peak(solve):
    """``solve()`` and the peak bytes numpy allocated while it ran."""
    tracemalloc.start()
    try:
        out = solve()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(ham_dir: str, case_path: str, out_path: str) -> None:
    comm = MPI.COMM_WORLD
    ham = load_hamiltonian(ham_dir)
    case = np.load(case_path)
    strs_a, strs_b, c = case["strs_a"], case["strs_b"], case["c"]
    spin_sq = None if np.isnan(case["spin_sq"]) else float(case["spin_sq"])
    guess = case["guess"] if case["guess"].size else None
    settings = solver_settings(spin_sq=spin_sq, max_cycle=int(case["max_cycle"]))
    args = (strs_a, strs_b, ham.hcore, ham.eri, ham.nelec, settings, guess)
    with thread_limit(1):
        spread = SpreadHamiltonian(comm, lambda: ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, strs_a, strs_b))
        lo, hi = spread.rows
        sigma = spread.gather(spread.apply(c[lo:hi]))
        both = spread.apply_both(c[lo:hi])
        s2c = spread.gather(both[1])
        same_pass = bool(np.array_equal(both[0], spread.apply(c[lo:hi])))
        # The upper triangle of a symmetric C's product, mirrored across the ranks (singlet case).
        c_sym = c + c.T if c.shape[0] == c.shape[1] else c
        mirror = SpreadHamiltonian(comm, lambda: ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, strs_a, strs_b),
                                   mirrored=True)  # fmt: skip
        sigma_mirrored = mirror.gather(mirror.apply(np.ascontiguousarray(c_sym[mirror.rows[0] : mirror.rows[1]])))
        ranks, peak = _peak(lambda: solve_spread(comm, *args))
        alone, peak_alone = _peak(lambda: solve_spread(MPI.COMM_SELF, *args))
        # The rows on a torch device (torch's CPU here): the same exchange, the torch kernel.
        on_torch = SpreadHamiltonian(comm, lambda: ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, strs_a, strs_b),
                                     mirrored=True, device=TORCH_CPU)  # fmt: skip
        lo, hi = on_torch.rows
        sigma_torch = on_torch.gather(on_torch.apply(c_sym[lo:hi] if on_torch.mirrored else c[lo:hi]))
        s2c_torch = on_torch.gather(on_torch.apply_spin_square(c[lo:hi]))
        torch_args = (*args[:5], replace(settings, device=TORCH_CPU), guess)
        solved_torch = solve_spread(comm, *torch_args)
    shared = {
        "energy": ranks.energy,
        "occ_a": ranks.state.occ_a,
        "occ_b": ranks.state.occ_b,
        "spin": ranks.spin_sq,
        "residual": ranks.residual_norm,
        "converged": ranks.converged,
        "energy_alone": alone.energy,
        "energy_torch": solved_torch.energy,
    }
    agree = all(np.array_equal(v, w) for v, w in zip(shared.values(), comm.bcast(shared).values(), strict=True))
    peaks = comm.gather(peak, root=0)
    halos = comm.gather(len(spread.block.halo), root=0)
    if comm.allreduce(agree and same_pass, op=MPI.LAND) and comm.Get_rank() == 0:
        np.savez(out_path, ranks=comm.Get_size(), sigma=sigma, s2c=s2c, bounds=spread.bounds, **shared,
                 amplitudes=ranks.state.amplitudes, amplitudes_alone=alone.state.amplitudes,
                 warnings=np.array(ranks.warnings, dtype=str), peaks=peaks, peak_alone=peak_alone,
                 halos=halos, sigma_mirrored=sigma_mirrored, mirrored=mirror.mirrored, sigma_torch=sigma_torch,
                 s2c_torch=s2c_torch, torch_mirrored=on_torch.mirrored,
                 amplitudes_torch=solved_torch.state.amplitudes)  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:4])
