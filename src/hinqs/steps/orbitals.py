"""Step: the Hamiltonian rotated into the natural orbitals of an iteration's variational state.

The loop selects strings in the orbitals prepare chose (MP2 natural orbitals by default),
which are a guess at where the correlated state's weight lies. Once the loop has a
variational state of its own, its one-particle density says where that weight really is:
the eigenvectors of the density (natural orbitals) make the state compact, so the same
number of strings holds more of it. Selected-CI codes (CIPSI, SHCI) rediagonalise in them;
``natural_orbitals.after`` continues the loop in them from the next iteration on.

Only active orbitals mix, so the core energy and every reference energy of meta.json stay
valid; the folder is a complete Hamiltonian that every later step reads like prepare's. A
state that spans every string (FCI of a small space) keeps prepare's orbitals: nothing to gain.
"""

from __future__ import annotations

import os
import time
from typing import Any


def natural_hamiltonian(
    hamiltonian: str | os.PathLike[str], state: str | os.PathLike[str], out: str | os.PathLike[str], *, iteration: int
) -> dict[str, Any]:
    """Write ``out``: ``hamiltonian``'s integrals in the natural orbitals of ``state``.

    meta.json keeps the source's record (system, references, core energy) and adds the
    occupations, the rotation (columns: new orbitals in the source's active orbitals) and the
    iteration whose state defined it. Returns the record added.
    """

    import numpy as np

    from hinqs.chem.rotation import natural_rotation, rotate_integrals
    from hinqs.io.hamiltonian import load_hamiltonian, write_hamiltonian
    from hinqs.kernel.density import one_rdm
    from hinqs.steps.pt2 import checked_state

    started = time.perf_counter()
    ham = load_hamiltonian(hamiltonian)
    ground = checked_state(state, ham.norb, tuple(ham.nelec)).sorted()
    dm_a, dm_b = one_rdm(ground.amplitudes, ground.strs_a, ground.strs_b, ham.norb, tuple(ham.nelec))
    if _spans_every_string(ground, ham.norb, tuple(ham.nelec)):
        # FCI in any orbitals: a rotation could only move the last bits, and cost the loop an
        # iteration to settle again. The folder holds prepare's integrals, bit for bit.
        occupations, rotation = np.diag(dm_a + dm_b).copy(), np.eye(ham.norb)
        hcore, eri = np.asarray(ham.hcore), np.asarray(ham.eri)
    else:
        occupations, rotation = natural_rotation(dm_a + dm_b)
        hcore, eri = rotate_integrals(ham.hcore, ham.eri, rotation)
    record = {
        "iteration": iteration,
        "rotated": not np.array_equal(rotation, np.eye(ham.norb)),
        "occupations": [float(x) for x in occupations],
        "rotation": rotation.tolist(),
        "source_sha256": ham.meta.get("sha256"),
        "seconds": round(time.perf_counter() - started, 3),
    }
    # The reference determinants are strings of the source's orbitals: in the natural ones the
    # subspace falls back to their aufbau determinant (largest occupations first), as before.
    dropped = ("format", "norb", "nelec", "ecore", "sha256", "reference_determinants")
    keep = {k: v for k, v in ham.meta.items() if k not in dropped}
    write_hamiltonian(out, hcore, eri, tuple(ham.nelec), ham.ecore, {**keep, "natural_orbitals": record})
    return record


def _spans_every_string(state: Any, norb: int, nelec: tuple[int, int]) -> bool:
    """Whether the state's product space is the whole FCI space (every string of each spin)."""
    from math import comb

    return len(state.strs_a) == comb(norb, nelec[0]) and len(state.strs_b) == comb(norb, nelec[1])
