"""The exact (FCI) energy of a benchmark config's system, in the integrals hinqs itself prepares.

Runs the prepare step of the repository on the config's first system (references off, so
nothing but the integrals is computed), then an FCI on that Hamiltonian folder, and prints
one YAML line to paste as the system's ``reference:``. For spaces above prepare's
``references.fci_max_determinants`` (the 16-orbital N2/6-31G has 19 M determinants), where
every benchmark run would otherwise pay minutes of FCI.

``--solver pyscf`` (default) is PySCF's ``direct_spin1``, whose dense two-electron contraction
costs N_det x norb^4 per product (19 M determinants x 16^4: over an hour on the loaded
2-core VM). ``--solver direct`` diagonalises the whole string space with hinqs' own product
kernel (the ``direct`` solver, equal to PySCF's FCI to 1e-10 Ha where both run:
tests/test_sqd_solvers.py), converged to 1e-10 Ha.

    python benchmarks/strong/exact_reference.py benchmarks/strong/n2_631g_2.0.yaml [--solver direct]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hinqs.chem.fci import fci_energy
from hinqs.config import load_config
from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.loop.settings import RunSettings, with_overrides
from hinqs.steps.prepare import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--solver", choices=("pyscf", "direct"), default="pyscf")
    args = parser.parse_args()
    settings = RunSettings.from_config(load_config(args.config))
    settings = with_overrides(settings, references__fci_max_determinants=0, references__ccsd=False,
                              references__sci=False)  # fmt: skip
    system = settings.systems[0]["name"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = prepare(settings, system, Path(tmp) / "hamiltonian")
        ham = load_hamiltonian(folder)
        start = time.perf_counter()
        if args.solver == "pyscf":
            energy = fci_energy(ham.hcore, ham.eri, tuple(ham.nelec), ham.ecore)
            source = f"FCI (PySCF {_pyscf()}, hinqs prepare integrals)"
        else:
            energy = _whole_space(ham)
            source = "FCI (hinqs direct solver over the whole string space, hinqs prepare integrals)"
        seconds = time.perf_counter() - start
    print(f"{system}: {ham.n_determinants:,} determinants, FCI {seconds:.0f} s")
    print(f'    reference: {{energy: {energy:.10f}, source: "{source}"}}')


def _whole_space(ham) -> float:
    """The lowest state of the whole string space with the ``direct`` solver (total energy)."""
    from pyscf.fci import cistring

    from hinqs.sqd.settings import SolverSettings
    from hinqs.sqd.solvers import solve

    nelec = tuple(ham.nelec)
    strings = [np.asarray(cistring.make_strings(range(ham.norb), n), np.int64) for n in nelec]
    settings = SolverSettings(solver="direct", max_cycle=400, conv_tol=1e-10, spin_sq=None, shift=0.1,
                              warm_start=False, device="cpu")  # fmt: skip
    out = solve(strings[0], strings[1], ham.hcore, ham.eri, nelec, settings)
    if not out.converged:
        raise SystemExit(f"the whole-space Davidson did not converge (residual {out.residual_norm})")
    return float(out.energy) + float(ham.ecore)


def _pyscf() -> str:
    import pyscf

    return pyscf.__version__


if __name__ == "__main__":
    main()
