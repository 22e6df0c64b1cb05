"""Chemistry: molecule -> active-space integrals (integrals), the Hamiltonian folder a run
starts from (prepare), reference energies (references, fci), the FCI floor of a product
space (floor) and the checks of a system's input (validation)."""
