"""The exact (FCI) energy of a benchmark config's system, in the integrals hinqs itself prepares.

Runs the prepare step of the repository on the config's first system (references off, so
nothing but the integrals is computed), then PySCF's FCI on that Hamiltonian folder, and
prints one YAML line to paste as the system's ``reference:``. For spaces above prepare's
``references.fci_max_determinants`` (the 16-orbital N2/6-31G has 19 M determinants), where
every benchmark run would otherwise pay minutes of FCI.

    python benchmarks/strong/exact_reference.py benchmarks/strong/n2_631g_2.0.yaml
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hinqs.chem.fci import fci_energy
from hinqs.config import load_config
from hinqs.io.hamiltonian import load_hamiltonian
from hinqs.loop.settings import RunSettings, with_overrides
from hinqs.steps.prepare import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    args = parser.parse_args()
    settings = RunSettings.from_config(load_config(args.config))
    settings = with_overrides(settings, references__fci_max_determinants=0, references__ccsd=False,
                              references__sci=False)  # fmt: skip
    system = settings.systems[0]["name"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = prepare(settings, system, Path(tmp) / "hamiltonian")
        ham = load_hamiltonian(folder)
        start = time.perf_counter()
        energy = fci_energy(ham.hcore, ham.eri, tuple(ham.nelec), ham.ecore)
        seconds = time.perf_counter() - start
    print(f"{system}: {ham.n_determinants:,} determinants, FCI {seconds:.0f} s")
    print(f'    reference: {{energy: {energy:.10f}, source: "FCI (PySCF {_pyscf()}, hinqs prepare integrals)"}}')


def _pyscf() -> str:
    import pyscf

    return pyscf.__version__


if __name__ == "__main__":
    main()
