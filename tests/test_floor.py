"""The accuracy floor: full string sets give FCI, fewer strings give a variational upper bound."""

from __future__ import annotations

import numpy as np
from conftest import LIH

from hinqs.chem.floor import exact_ground_state, floor_energy
from hinqs.chem.prepare import prepare_system
from hinqs.config import complete_system, schema_defaults
from hinqs.io.hamiltonian import load_hamiltonian


def test_floor_is_variational_and_exact_with_all_strings(tmp_path):
    system = complete_system({"name": "lih", "geometry": LIH, "basis": "sto-3g", "orbitals": "hf"})
    references = {**schema_defaults()["references"], "fci_max_determinants": 10**6, "ccsd": False}
    prepare_system(system, references, tmp_path / "ham")
    ham = load_hamiltonian(tmp_path / "ham")
    state = exact_ground_state(ham)
    n_a, n_b = state.civec.shape
    assert abs(floor_energy(ham, state, n_a, n_b) - state.energy) < 1e-9
    energies = [floor_energy(ham, state, k, k) for k in (2, 5, 10)]
    assert all(e >= state.energy - 1e-10 for e in energies)
    assert energies[0] >= energies[1] - 1e-10 >= energies[2] - 2e-10
    assert np.isfinite(energies).all()
