"""Run under ``mpiexec -n N`` by tests/test_distributed.py: one batch's products and solve spread over the ranks.

``python mpi_spread.py HAMILTONIAN_DIR CASE.npz OUT.npz``: CASE holds ``strs_a``, ``strs_b``
(int64), a coefficient matrix ``c`` and ``spin_sq`` (NaN: none). Every rank gathers H C and
S^2 C from all ranks' row blocks and solves the batch over all ranks and over itself alone
(``COMM_SELF``); rank 0 writes what it got to OUT, and whether every rank got the same bits.
"""

from __future__ import annotations

import sys

import numpy as np
from mpi4py import MPI
from sqd_helpers import solver_settings

from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.kernel import ProductHamiltonian
from hinqs.sqd.distributed import SpreadHamiltonian, solve_spread
from hinqs.threads import thread_limit


def main(ham_dir: str, case_path: str, out_path: str) -> None:
    comm = MPI.COMM_WORLD
    ham = load_hamiltonian(ham_dir)
    case = np.load(case_path)
    strs_a, strs_b, c = case["strs_a"], case["strs_b"], case["c"]
    spin_sq = None if np.isnan(case["spin_sq"]) else float(case["spin_sq"])
    settings = solver_settings(spin_sq=spin_sq)
    with thread_limit(1):
        spread = SpreadHamiltonian(comm, lambda: ProductHamiltonian(ham.hcore, ham.eri, ham.nelec, strs_a, strs_b))
        sigma, s2c = spread.apply(c), spread.apply_spin_square(c)
        ranks = solve_spread(comm, strs_a, strs_b, ham.hcore, ham.eri, ham.nelec, settings)
        alone = solve_spread(MPI.COMM_SELF, strs_a, strs_b, ham.hcore, ham.eri, ham.nelec, settings)
    got = {
        "sigma": sigma,
        "s2c": s2c,
        "bounds": spread.bounds,
        "energy": ranks.energy,
        "amplitudes": ranks.state.amplitudes,
        "occ_a": ranks.state.occ_a,
        "spin": ranks.spin_sq,
        "residual": ranks.residual_norm,
        "energy_alone": alone.energy,
        "amplitudes_alone": alone.state.amplitudes,
    }
    same = all(np.array_equal(v, w) for v, w in zip(got.values(), comm.bcast(got).values(), strict=True))
    if comm.allreduce(same, op=MPI.LAND) and comm.Get_rank() == 0:
        np.savez(out_path, ranks=comm.Get_size(), **got)


if __name__ == "__main__":
    main(*sys.argv[1:4])
