"""H over a product space of alpha x beta CI strings, following the subspace's own links.

Every expensive step of the loop (the Davidson solve, the PT2, the expansion's scoring, the
first-order target) applies the Hamiltonian to a coefficient matrix ``C[I, J]`` over
``S_alpha x S_beta``. PySCF's ``selected_ci.contract_2e`` does that with a dense
intermediate over every orbital pair for every determinant, whatever the connectivity of
the subspace. Here the Hamiltonian is split the way the subspace is built (SBD's
formulation; ffsim applies operators the same way)::

    sigma = H_aa C + C H_bb^T + sum_{alpha links I<-J (pq)} sum_{beta links I'<-J' (rs)} (pq|rs) s s' C[J, J']

with ``H_aa``, ``H_bb`` one spin's sparse string-space Hamiltonians (one-body plus
same-spin two-body, Slater-Condon rules) and the links the single excitations ``E_pq``
(``p = q`` included for occupied ``p``) that connect strings of the subspace. Its cost
follows the links: ``K_a s_a K_b s_b`` with ``s`` about 40 at 26 orbitals, instead of about
1e5 flops per determinant.

Every output row is computed by one thread in a fixed order, so a product gives the same
bits at any thread count (numba's ``prange`` over rows). The same row kernel serves a
rectangular product (targets other than the sources: the PT2's external strings, the
expansion's candidates), and the PT2 sums its terms row by row without storing the product.
Where both spins share one set of strings and electrons (a closed-shell singlet), a
symmetric ``C`` gives a symmetric ``sigma``: the row kernels then compute each row's cyclic
window of half its columns and the rest is mirrored (:class:`hinqs.kernel.block.RowBlock`
``upper``), half the work, as PySCF's ``direct_spin0`` uses a singlet's symmetry.

Modules: :mod:`hinqs.kernel.links` (string excitations and link tables),
:mod:`hinqs.kernel.rows` (the numba row kernels), :mod:`hinqs.kernel.operator` (the
Python-facing :class:`ProductHamiltonian`). Strings are int64 CI strings, bit ``i`` =
spatial orbital ``i`` occupied (PySCF's and qiskit-addon-sqd's encoding), sorted ascending.
"""

import os

import numba

# numba's OpenMP layer resets the process's OpenMP thread count when it starts its pool
# (measured: torch went from 1 to the machine's cores after one kernel call), which would put
# the network's training and PySCF on more threads than their step declares. Its own
# workqueue layer touches no other library's threads; hinqs never launches kernels from two
# Python threads at once, which is the one thing it does not allow. A user's
# NUMBA_THREADING_LAYER is respected.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

from hinqs.kernel.operator import ProductHamiltonian

__all__ = ["ProductHamiltonian"]
