"""The prepare step: a config system (or FCIDUMP) -> a complete Hamiltonian folder."""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from hinqs import __version__
from hinqs.chem.integrals import ActiveSpaceIntegrals, integrals_from_fcidump, integrals_from_geometry
from hinqs.chem.mean_field import search_references
from hinqs.chem.open_shells import natural_orbital_start
from hinqs.chem.references import compute_references
from hinqs.chem.validation import check_correlates
from hinqs.errors import InputError
from hinqs.io.hamiltonian import write_hamiltonian


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose numbers end up in the results, for the record."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"hinqs": __version__, "python": platform.python_version()}
    for package in ("pyscf", "numpy", "scipy", "qiskit-addon-sqd", "torch"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def ensure_writable_parent(out_dir: str | os.PathLike[str]) -> None:
    """Fail fast, before any computing, when the output folder cannot be written.

    Probes the nearest folder that exists on the way to ``out_dir`` and creates none: a
    refusal after this (a bad geometry found later) must leave no empty folder behind; the
    atomic writer creates the path when the result is complete.
    """
    parent = Path(out_dir).resolve().parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise InputError(f"output folder {out_dir} is not writable: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise InputError(f"output folder {out_dir} is not writable: {exc.strerror or exc}") from None


def prepare_system(system: dict[str, Any], references: dict[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Compute the active-space integrals and references of ``system`` and write them to ``out_dir``.

    ``system`` and ``references`` are complete config sections (the schema's defaults filled in).
    meta.json also records the mean fields tried (``mean_field``: RHF/ROHF and UHF from each
    start, stability, one line), the ``reference_determinants`` the loop starts from, and
    ``open_shells``: where the spin symmetry broke, the UHF natural orbitals the integrals were
    rotated into and the open shells whose couplings joined the references (else null).
    """
    ensure_writable_parent(out_dir)
    integrals: ActiveSpaceIntegrals
    if "fcidump" in system:
        integrals = integrals_from_fcidump(system["fcidump"])
        check_correlates(system["name"], integrals.norb, integrals.nelec)
    else:
        integrals, _ = integrals_from_geometry(system)
    search = search_references(integrals.hcore, integrals.eri, integrals.nelec, integrals.ecore)
    integrals, search, orbitals = natural_orbital_start(system["orbitals"], integrals, search)
    user = system.get("reference")  # optional key: no default to restate
    refs = compute_references(
        integrals.hcore,
        integrals.eri,
        integrals.nelec,
        integrals.ecore,
        fci_max_determinants=references["fci_max_determinants"],
        ccsd=references["ccsd"],
        sci=references["sci"],
        sci_cutoffs=references["sci_cutoffs"],
        sci_max_seconds=references["sci_max_seconds"],
        mean_field=search.restricted,
        user_reference=None if user is None else str(user["source"]),
    )
    refs["seconds"]["mean_field"] = search.seconds
    meta = {
        "e_hf": integrals.info.get("e_hf", refs["hf_active"]),
        "references": refs,
        "mean_field": search.record(),
        "open_shells": orbitals,
        "reference_determinants": search.determinants,
        "active_space": integrals.info,
        "system": system,
        "versions": library_versions(),
    }
    return write_hamiltonian(out_dir, integrals.hcore, integrals.eri, integrals.nelec, integrals.ecore, meta)
