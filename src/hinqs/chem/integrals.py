"""PySCF: from a system in the config (or an FCIDUMP) to active-space integrals.

The integrals are computed once, here, and handed to every later process through the
Hamiltonian folder: the SCF of molecules with degenerate orbitals depends on the thread
count (design notes), so recomputing it per worker could give each worker other orbitals.

Open shells use ROHF, whose single set of orbitals is what a determinant set over
spatial orbitals needs.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.chem.validation import (
    check_atom_positions,
    check_correlates,
    check_elements_and_basis,
    check_geometry_text,
    fcidump_electrons,
    geometry_lines,
    scan_fcidump,
)
from hinqs.errors import InputError
from hinqs.io.hamiltonian import check_orbital_count


@dataclass
class ActiveSpaceIntegrals:
    """Integrals of the active space and what produced them."""

    hcore: np.ndarray
    eri: np.ndarray
    nelec: tuple[int, int]
    ecore: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def norb(self) -> int:
        return int(self.hcore.shape[0])


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence PySCF's warnings about optional packages while building a molecule."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def build_molecule(system: dict[str, Any]) -> Any:
    """A PySCF ``Mole`` for a config system, with one-line errors for what the user got wrong.

    ``system`` is a validated config system: the schema has filled every default it leaves
    out (:func:`hinqs.config.complete_system` for one written by hand), so none is restated here.
    """
    from pyscf import gto
    from pyscf.gto.basis import BasisNotFoundError

    name = system["name"]
    check_geometry_text(name, system["geometry"])
    check_elements_and_basis(name, system["geometry"], system["basis"])
    mol = gto.Mole()
    mol.atom = system["geometry"]
    mol.unit = system["unit"]
    mol.basis = system["basis"]
    mol.charge = system["charge"]
    mol.spin = system["spin"]
    mol.symmetry = system["symmetry"]
    mol.verbose = 0
    mol.output = os.devnull
    try:
        with _quiet():
            mol.build(parse_arg=False)
    except BasisNotFoundError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"system {name!r}: unknown basis {mol.basis!r} ({first})") from None
    except RuntimeError as exc:
        match = re.search(r"Electron number (\d+) and spin (\d+)", str(exc))
        if match:
            _check_electrons(name, int(match.group(1)), int(match.group(2)))
        symbol = re.search(r"Unsupported atom symbol (\S+)", str(exc))
        if symbol:
            written = _as_written(system["geometry"], symbol.group(1))
            raise InputError(f"system {name!r}: unknown element {written!r}") from None
        raise InputError(f"system {name!r}: {str(exc).splitlines()[0]}") from None
    except AssertionError:
        # PySCF asserts 0 <= N_beta <= N_alpha (a charge or spin beyond the electrons).
        _check_electrons(name, mol.tot_electrons(), mol.spin)
        raise InputError(f"system {name!r}: charge {mol.charge} and spin {mol.spin} do not fit the molecule") from None
    except (SyntaxError, NameError):
        # PySCF falls back to eval() on coordinates it cannot parse as floats: a typo such
        # as "0.74x" surfaces as a SyntaxError or NameError of the evaluated text.
        raise InputError(
            f"system {name!r}: cannot read geometry ({_unreadable_coordinate(system['geometry'])})"
        ) from None
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"system {name!r}: cannot read geometry ({detail})") from None
    symbols = [mol.atom_symbol(i) for i in range(mol.natm)]
    charges = [int(mol.atom_charge(i)) for i in range(mol.natm)]
    check_atom_positions(
        name, symbols, mol.atom_coords(unit="Angstrom"), charges, allow_close=system["allow_close_atoms"]
    )
    return mol


def _unreadable_coordinate(geometry: Any) -> str:
    """Name the first coordinate that is not a number, for the error message."""
    for number, line in enumerate(geometry_lines(geometry) or [], start=1):
        for text in line.split()[1:]:
            try:
                float(text)
            except ValueError:
                return f"atom {number}: {text!r} is not a number"
    return "a coordinate is not a number"


def _as_written(geometry: Any, upper_symbol: str) -> str:
    """The atom label as the user wrote it (PySCF reports it upper-cased)."""
    for line in geometry_lines(geometry) or []:
        label = line.split()[0]
        if label.upper() == upper_symbol:
            return label
    return upper_symbol


def _check_electrons(name: str, n_electrons: int, spin: int) -> None:
    if n_electrons <= 0:
        raise InputError(f"system {name!r}: the molecule has {n_electrons} electrons")
    if (n_electrons - spin) % 2 or spin > n_electrons:
        raise InputError(
            f"system {name!r}: {n_electrons} electrons are incompatible with spin={spin} "
            "(spin is 2S = N_alpha - N_beta)"
        )


def run_scf(mol: Any, conv_tol: float = 1e-10) -> Any:
    """RHF for closed shells, ROHF for open shells; an error if it does not converge.

    ``mf.stable`` records PySCF's internal stability analysis of the solution, which is kept
    as converged: following the instability would change the orbitals, the frozen core and so
    the active-space FCI energy of systems the accuracy table is measured on (C2/6-31G at
    1.2425 A has an internally unstable RHF; so has N2/6-31G at 3.0 A). The references on the
    active integrals (:mod:`hinqs.chem.mean_field`) are followed to stability.
    """
    from pyscf import scf

    from hinqs.chem.mean_field import internally_stable

    mf = scf.RHF(mol) if mol.spin == 0 else scf.ROHF(mol)
    mf.conv_tol = conv_tol
    mf.verbose = 0
    mf.kernel()
    if not mf.converged:
        mf = mf.newton()
        mf.kernel()
    if not mf.converged:
        raise InputError("the SCF did not converge; check the geometry, charge and spin")
    mf.stable = internally_stable(mf)
    return mf


def choose_active_space(system: dict[str, Any], mol: Any, nmo: int) -> tuple[int, int, tuple[int, int]]:
    """(ncore, ncas, (n_alpha, n_beta) active) from ``active_space`` or ``frozen_core``."""
    name = system["name"]
    n_alpha, n_beta = mol.nelec
    if system.get("active_space"):
        n_active_electrons, ncas = system["active_space"]
        n_core_electrons = mol.nelectron - n_active_electrons
        if n_core_electrons < 0 or n_core_electrons % 2:
            raise InputError(
                f"system {name!r}: active space of {n_active_electrons} electrons does not fit the "
                f"molecule's {mol.nelectron} electrons (the rest must fill doubly occupied core orbitals)"
            )
        ncore = n_core_electrons // 2
    else:
        ncore = system["frozen_core"]
        ncas = nmo - ncore
        if ncore > n_beta:
            raise InputError(f"system {name!r}: frozen_core={ncore} exceeds the {n_beta} doubly occupied orbitals")
    if ncore + ncas > nmo:
        raise InputError(
            f"system {name!r}: active space ({ncore} core + {ncas} active orbitals) is larger than the "
            f"basis ({nmo} orbitals)"
        )
    nelecas = (n_alpha - ncore, n_beta - ncore)
    if nelecas[0] > ncas or nelecas[1] < 0:
        raise InputError(f"system {name!r}: {nelecas[0]} alpha electrons do not fit in {ncas} active orbitals")
    return ncore, ncas, nelecas


# The SCF-based orbitals each ``orbitals`` choice starts from: ``auto`` is MP2's natural orbitals
# unless prepare finds the spin symmetry broken, ``uno`` rotates canonical ones
# (:func:`hinqs.chem.open_shells.natural_orbital_start` does the rest).
BASE_ORBITALS = {"auto": "mp2", "uno": "hf"}


def natural_orbitals(mf: Any, ncore: int, ncas: int, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """MO coefficients with the active orbitals replaced by the natural orbitals of ``kind``.

    ``hf`` returns the SCF orbitals. ``mp2`` / ``ccsd`` correlate the active electrons in
    the active orbitals (core and virtuals outside the active space frozen), take the
    spin-summed one-particle density matrix's active block and diagonalise it; the natural
    orbitals, by decreasing occupation, replace the active orbitals. Only active orbitals are
    rotated among themselves, so the core, the active-space FCI energy and every reference
    computed on the active integrals stay the same; the ground state becomes more compact
    (its weight gathers on fewer strings). Occupations are returned for the record.
    """
    if kind == "hf":
        return mf.mo_coeff, None
    from pyscf import cc, mp

    nmo = mf.mo_coeff.shape[1]
    active = slice(ncore, ncore + ncas)
    frozen = [i for i in range(nmo) if not ncore <= i < ncore + ncas] or None
    solver = mp.MP2(mf, frozen=frozen) if kind == "mp2" else cc.CCSD(mf, frozen=frozen)
    solver.verbose = 0
    solver.kernel()
    rdm1 = solver.make_rdm1()
    if isinstance(rdm1, tuple) or np.ndim(rdm1) == 3:  # open shells: (alpha, beta) in the SCF's MO basis
        rdm1 = rdm1[0] + rdm1[1]
    occupations, rotation = np.linalg.eigh(np.asarray(rdm1)[active, active])
    order = np.argsort(-occupations, kind="stable")
    mo_coeff = np.array(mf.mo_coeff, copy=True)
    mo_coeff[:, active] = mf.mo_coeff[:, active] @ rotation[:, order]
    return mo_coeff, occupations[order]


def integrals_from_geometry(system: dict[str, Any]) -> tuple[ActiveSpaceIntegrals, Any]:
    """Run the SCF for a geometry system and return its active-space integrals and the SCF.

    ``system`` is complete (validated): its orbitals, SCF threshold and frozen core are the
    config's or the schema's, never a fallback of this module's.
    """
    from pyscf import ao2mo, mcscf

    mol = build_molecule(system)
    _check_electrons(system["name"], mol.nelectron, mol.spin)
    nmo = mol.nao_nr()
    ncore, ncas, nelecas = choose_active_space(system, mol, nmo)
    check_orbital_count(ncas, f"system {system['name']!r}", "; choose a smaller active_space")
    check_correlates(system["name"], ncas, nelecas)
    mf = run_scf(mol, system["scf_conv_tol"])
    kind = BASE_ORBITALS.get(system["orbitals"], system["orbitals"])
    mo_coeff, occupations = natural_orbitals(mf, ncore, ncas, kind)
    casci = mcscf.CASCI(mf, ncas, nelecas)
    casci.verbose = 0
    hcore, ecore = casci.get_h1eff(mo_coeff)
    eri = ao2mo.restore(1, casci.get_h2eff(mo_coeff), ncas)
    info = {
        "source": "geometry",
        "scf": "RHF" if mol.spin == 0 else "ROHF",
        "scf_stable": mf.stable,
        "e_hf": float(mf.e_tot),
        "e_nuc": float(mol.energy_nuc()),
        "ncore": ncore,
        "ncas": ncas,
        "nmo": nmo,
        "n_electrons": int(mol.nelectron),
        "mo_energy_active": [float(e) for e in mf.mo_energy[ncore : ncore + ncas]],
        "orbitals": kind,
        "natural_occupations": None if occupations is None else [float(x) for x in occupations],
    }
    return ActiveSpaceIntegrals(
        hcore=np.asarray(hcore), eri=np.asarray(eri), nelec=nelecas, ecore=float(ecore), info=info
    ), mf


def integrals_from_fcidump(path: str | os.PathLike[str]) -> ActiveSpaceIntegrals:
    """Read integrals written by another code; a one-line error for a missing, malformed or inconsistent file.

    The header is checked against the integral lines first (:func:`hinqs.chem.validation.scan_fcidump`):
    PySCF's reader trusts NORB and fails, or silently misreads, when they disagree.
    """
    from pyscf import ao2mo
    from pyscf.tools import fcidump

    from hinqs.io.hamiltonian import check_integrals

    path = Path(path)
    norb, nelec = fcidump_shape(path)
    try:
        with contextlib.redirect_stdout(io.StringIO()), _quiet():
            data = fcidump.read(str(path), verbose=False)
        hcore = np.asarray(data["H1"], dtype=np.float64).reshape(norb, norb)
        eri = ao2mo.restore(1, np.asarray(data["H2"], dtype=np.float64), norb)
        ecore = float(data.get("ECORE", 0.0))
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"malformed FCIDUMP {path}: {detail}") from None
    try:
        check_integrals(hcore, eri)
    except InputError as exc:
        raise InputError(f"malformed FCIDUMP {path}: {exc}") from None
    if not np.isfinite(ecore):
        raise InputError(f"malformed FCIDUMP {path}: the core energy is not finite")
    info = {"source": "fcidump", "fcidump": str(path), "ncas": norb, "n_electrons": sum(nelec)}
    return ActiveSpaceIntegrals(hcore=hcore, eri=eri, nelec=nelec, ecore=ecore, info=info)


def fcidump_shape(path: str | os.PathLike[str]) -> tuple[int, tuple[int, int]]:
    """(NORB, (N_alpha, N_beta)) of an FCIDUMP, every line checked, without reading the integrals."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"FCIDUMP {path} is a folder, not a file")
    if not path.is_file():
        raise InputError(f"FCIDUMP file not found: {path}")
    shape = scan_fcidump(path)
    nelec = fcidump_electrons(shape, path)
    check_orbital_count(shape.norb, f"FCIDUMP {path}")
    return shape.norb, nelec


def active_shape_of(system: dict[str, Any]) -> tuple[int, tuple[int, int]]:
    """(active orbitals, (N_alpha, N_beta) active) of a complete config system, without an SCF.

    Every check of the system's chemistry that needs no SCF runs here (elements, basis,
    geometry, charge and spin against the electrons, frozen core and active space, something
    to correlate), so the workflow can refuse a system when it is planned, before any job;
    ``prepare`` runs the same checks through :func:`integrals_from_geometry`.
    """
    name = system["name"]
    if "fcidump" in system:
        norb, nelec = fcidump_shape(system["fcidump"])
    else:
        mol = build_molecule(system)
        _check_electrons(name, mol.nelectron, mol.spin)
        _ncore, norb, nelec = choose_active_space(system, mol, mol.nao_nr())
        check_orbital_count(norb, f"system {name!r}", "; choose a smaller active_space")
    check_correlates(name, norb, nelec)
    return norb, nelec
