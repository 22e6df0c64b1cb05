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

``--run FOLDER --iteration K`` (with ``--solver direct``) takes the integrals of a finished
run's system folder (the very integrals iteration K used, prepare's or the natural-orbital
ones: prepare need not run again) and starts the Davidson from iteration K's state, which lies mHa from the answer:
the whole-space solve then needs a fraction of its cycles (the answer does not depend on the
start, only the time does).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hinqs.chem.fci import fci_energy
from hinqs.config import load_config
from hinqs.io.hamiltonian import load_hamiltonian, read_meta
from hinqs.io.layout import SystemLayout
from hinqs.loop.settings import RunSettings, with_overrides
from hinqs.steps.prepare import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="the benchmark config (not needed with --run)")
    parser.add_argument("--solver", choices=("pyscf", "direct"), default="pyscf")
    parser.add_argument("--run", type=Path, help="a finished run's system folder (results/<system>)")
    parser.add_argument("--iteration", type=int, help="with --run: the iteration whose state starts the solve")
    args = parser.parse_args()
    if args.run is not None:
        ham = load_hamiltonian(_integrals_of(args.run, args.iteration))
        state = SystemLayout(args.run).iteration(args.iteration).sqd / "state.npz" if args.iteration else None
        start = time.perf_counter()
        energy = _whole_space(ham, state)
        print(f"{args.run.name}: {ham.n_determinants:,} determinants, FCI {time.perf_counter() - start:.0f} s")
        print(f'    reference: {{energy: {energy:.10f}, source: "FCI (hinqs direct solver over the whole '
              f'string space, the run\'s own integrals)"}}')  # fmt: skip
        return
    if args.config is None:
        parser.error("give a config, or --run")
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


def _integrals_of(run: Path, iteration: int | None) -> Path:
    """The Hamiltonian folder iteration ``iteration`` of a run worked in: prepare's, or the
    natural-orbital one after the loop turned (``SystemLayout.hamiltonian_at``)."""
    system = SystemLayout(run)
    if iteration is None or not (system.natural_hamiltonian / "meta.json").is_file():
        return system.hamiltonian
    turned = read_meta(system.natural_hamiltonian)["natural_orbitals"]["iteration"]
    return system.hamiltonian_at(iteration, turned)


def _whole_space(ham, state: Path | None = None) -> float:
    """The lowest state of the whole string space with the ``direct`` solver (total energy),
    from ``state`` (a state.npz of these integrals) embedded in it when given."""
    from pyscf.fci import cistring

    from hinqs.io.files import read_state
    from hinqs.sqd.settings import SolverSettings
    from hinqs.sqd.solvers import solve

    nelec = tuple(ham.nelec)
    strings = [np.asarray(cistring.make_strings(range(ham.norb), n), np.int64) for n in nelec]
    guess = None
    if state is not None:
        known = read_state(state, sort=True, norb=ham.norb, nelec=nelec)
        guess = np.zeros((len(strings[0]), len(strings[1])))
        rows = np.searchsorted(strings[0], known.strs_a.astype(np.int64))
        cols = np.searchsorted(strings[1], known.strs_b.astype(np.int64))
        guess[np.ix_(rows, cols)] = known.amplitudes
    settings = SolverSettings(solver="direct", max_cycle=400, conv_tol=1e-10, spin_sq=None, shift=0.1,
                              warm_start=False, device="cpu")  # fmt: skip
    out = solve(strings[0], strings[1], ham.hcore, ham.eri, nelec, settings, guess)
    if not out.converged:
        raise SystemExit(f"the whole-space Davidson did not converge (residual {out.residual_norm})")
    return float(out.energy) + float(ham.ecore)


def _pyscf() -> str:
    import pyscf

    return pyscf.__version__


if __name__ == "__main__":
    main()
