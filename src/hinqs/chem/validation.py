"""Checks of user input that PySCF and NumPy accept but that would fail later, or silently mislead.

Each check raises :class:`hinqs.errors.InputError` with one line naming the problem, so
whichever command reads the input ends with that line and exit code 2 instead of a traceback
from deep inside an SCF, a Davidson solver or a training loop, and before anything is written.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.errors import InputError

# Two nuclei closer than this are a typo, not chemistry, even for those who mean close atoms
# (``allow_close_atoms``): at 0.1 A two protons repel with 5.3 Ha and the HF energy of H2 is
# +2.7 Ha; PySCF still "converges" there (measured down to 0.01 A), and two atoms at the same
# point end in a traceback from the SCF's initial guess.
MIN_ATOM_DISTANCE_ANGSTROM = 0.1
# Below this fraction of the sum of two atoms' covalent radii a geometry is taken as a
# mistake (a misplaced decimal point, Bohr read as Angstrom) unless the system says
# ``allow_close_atoms: true``. H-F at 0.1 A (0.11 of 0.88 A) computes to exit 0 otherwise;
# the compressed end of a usual bond scan (0.7 x equilibrium) stays well above it.
CLOSE_FRACTION = 0.5
BOHR_ANGSTROM = 0.52917721092


def geometry_lines(geometry: Any) -> list[str] | None:
    """The atom lines of a geometry string as PySCF splits it (';' or newline, '#' comments).

    None when the geometry is not an inline string (a list, or a path to a geometry file,
    which PySCF reads itself).
    """
    if not isinstance(geometry, str) or os.path.isfile(geometry):
        return None
    text = geometry.replace(";", "\n").replace(",", " ").replace("\t", " ")
    return [line.strip() for line in text.split("\n") if line.strip() and not line.strip().startswith("#")]


def check_geometry_text(name: str, geometry: Any) -> None:
    """Catch an empty geometry and Cartesian lines with a wrong number of fields before PySCF parses them.

    PySCF reads the first line to decide between Cartesian ("symbol x y z") and Z-matrix
    input; in Cartesian mode it silently ignores a fifth field, so "H 0 0 0.74 5" would be
    taken as something the user did not write.
    """
    lines = geometry_lines(geometry)
    if lines is None:
        if isinstance(geometry, list | tuple) and not geometry:
            raise InputError(f"system {name!r}: the geometry has no atoms")
        return
    if not lines:
        raise InputError(f"system {name!r}: the geometry has no atoms")
    if len(lines) == 1 and _looks_like_path(lines[0]):
        # PySCF reads an existing path as a geometry file; a missing one it parses as an atom.
        raise InputError(f"system {name!r}: geometry file not found: {geometry.strip()}")
    if len(lines[0].split()) == 1:
        return  # Z-matrix input (its first line is the symbol alone): PySCF checks its own format
    for number, line in enumerate(lines, start=1):
        if len(line.split()) != 4:
            raise InputError(
                f"system {name!r}: atom {number} ({line!r}) has {len(line.split())} fields; "
                "a Cartesian geometry line is 'symbol x y z' (a Z-matrix starts with the symbol alone)"
            )


def _looks_like_path(line: str) -> bool:
    return len(line.split()) == 1 and ("/" in line or line.lower().endswith((".xyz", ".zmat", ".txt")))


def element_of(label: str) -> str | None:
    """The element symbol of a PySCF atom label ("H", "h1", "C@2", "GHOST-O", "X-H"); None when
    the label names no element (PySCF would upper-case it and report an unknown basis)."""
    from pyscf.data.elements import ELEMENTS

    text = label.strip()
    upper = text.upper()
    for prefix in ("GHOST-", "GHOST:", "X-", "X:"):
        if upper.startswith(prefix):
            text = text[len(prefix) :]
            break
    symbol = re.split(r"[\d@_^]", text, maxsplit=1)[0]
    symbol = symbol.capitalize()
    return symbol if symbol in ELEMENTS[1:] else None


def check_elements_and_basis(name: str, geometry: Any, basis: str) -> None:
    """Name an unknown element as one, and a misspelt basis as an unknown basis, before PySCF.

    PySCF reads an unknown label such as "Xx" as a ghost atom and then reports that the
    basis has no entry for it, and it normalises an unknown basis name ("6-31gxx" ->
    "631gxx") and then tries to parse it as basis text, which surfaces as an error about
    the geometry. Geometry files (read by PySCF) and basis files are left to PySCF.
    """
    from pyscf.gto import basis as basis_sets

    lines = geometry_lines(geometry)
    if lines is None:
        return
    symbols: list[str] = []
    for line in lines:
        label = line.split()[0]
        symbol = element_of(label)
        if symbol is None:
            raise InputError(f"system {name!r}: unknown element {label!r}")
        if symbol not in symbols:
            symbols.append(symbol)
    if os.path.isfile(basis):
        return
    for symbol in symbols:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = basis_sets.load(basis, symbol)
        except Exception:  # PySCF raises KeyError, BasisNotFoundError or a parse error
            found = None
        if not found:
            raise InputError(f"system {name!r}: unknown basis {basis!r} for {symbol} (a basis set name known to PySCF)")


def check_atom_positions(
    name: str,
    symbols: Sequence[str],
    coords_angstrom: np.ndarray,
    charges: Sequence[int] | None = None,
    allow_close: bool = False,
) -> None:
    """Refuse non-finite coordinates and nuclei closer than a typo allows.

    PySCF parses "nan" and "inf" as coordinates and builds the molecule; the SCF then fails
    with a traceback or returns NaN. Two nuclei (``charges`` > 0; ghost atoms carry none and
    may sit anywhere) closer than :data:`CLOSE_FRACTION` of their covalent radii' sum are
    refused unless ``allow_close``; closer than :data:`MIN_ATOM_DISTANCE_ANGSTROM` always.
    """
    coords = np.asarray(coords_angstrom, dtype=np.float64).reshape(-1, 3)
    for index in np.flatnonzero(~np.all(np.isfinite(coords), axis=1)):
        raise InputError(f"system {name!r}: atom {index + 1} ({symbols[index]}) has a non-finite coordinate")
    charges = [1] * len(coords) if charges is None else list(charges)
    for i in range(len(coords)):
        for j in range(i + 1, len(coords)):
            if charges[i] <= 0 or charges[j] <= 0:
                continue
            distance = float(np.linalg.norm(coords[i] - coords[j]))
            pair = f"atoms {i + 1} ({symbols[i]}) and {j + 1} ({symbols[j]}) are {distance:.4g} Angstrom apart"
            if distance < MIN_ATOM_DISTANCE_ANGSTROM:
                raise InputError(
                    f"system {name!r}: {pair} (closer than {MIN_ATOM_DISTANCE_ANGSTROM}): check the geometry"
                )
            limit = CLOSE_FRACTION * covalent_sum_angstrom(charges[i], charges[j])
            if distance < limit and not allow_close:
                raise InputError(
                    f"system {name!r}: {pair}, under {CLOSE_FRACTION} x their covalent radii ({limit:.3g} A): "
                    "check the geometry and its unit, or set allow_close_atoms: true"
                )


def covalent_sum_angstrom(z1: int, z2: int) -> float:
    """The sum of two elements' covalent radii (PySCF's table, stored in Bohr) in Angstrom."""
    from pyscf.data.radii import COVALENT

    return float(COVALENT[z1] + COVALENT[z2]) * BOHR_ANGSTROM


def check_correlates(name: str, norb: int, nelec: tuple[int, int]) -> None:
    """Refuse an active space with a single determinant: nothing to correlate, no method to show.

    With every active orbital filled (no virtuals) or no active electron, the Hartree-Fock
    determinant is the exact answer; CCSD(T) divides by zero there and the network has
    nothing to learn.
    """
    n_alpha, n_beta = nelec
    if n_alpha + n_beta == 0:
        raise InputError(f"system {name!r}: the active space has no electrons: nothing to correlate")
    if min(n_alpha, norb - n_alpha) == 0 and min(n_beta, norb - n_beta) == 0:
        raise InputError(
            f"system {name!r}: {n_alpha}+{n_beta} electrons fill all {norb} active orbitals (or none): "
            "the only determinant is Hartree-Fock, nothing to correlate; choose a larger basis or active space"
        )


@dataclass(frozen=True)
class FcidumpShape:
    """What an FCIDUMP's header declares, checked against the integral lines that follow it."""

    norb: int
    n_electrons: int
    ms2: int


_HEADER_INT = {key: re.compile(rf"\b{key}\s*=\s*([-+]?\d+)", re.IGNORECASE) for key in ("NORB", "NELEC", "MS2")}
_MAX_HEADER_LINES = 10  # PySCF's reader gives up on a header longer than this


def _closes_header(line: str) -> bool:
    return "&END" in line.upper() or "/" in line


def _read_header(handle: Any, path: Path) -> tuple[dict[str, int], int]:
    """Header integers (NORB, NELEC, MS2 when present) and the number of header lines."""
    lines: list[str] = []
    while len(lines) < _MAX_HEADER_LINES and not (lines and _closes_header(lines[-1])):
        line = handle.readline()
        if not line:
            break
        lines.append(line)
    if not lines or not _closes_header(lines[-1]):
        raise InputError(f"malformed FCIDUMP {path}: no '&END' or '/' closes the header")
    text = " ".join(lines)
    values = {}
    for key, pattern in _HEADER_INT.items():
        match = pattern.search(text)
        if match:
            values[key] = int(match.group(1))
    for key in ("NORB", "NELEC"):
        if key not in values:
            raise InputError(f"malformed FCIDUMP {path}: the header lacks {key}")
    return values, len(lines)


def _integral_label(fields: list[str], number: int, path: Path, norb: int) -> tuple[int, int, int, int]:
    """The orbital indices of one integral line, checked against NORB."""
    if len(fields) != 5:
        raise InputError(f"malformed FCIDUMP {path}: line {number} has {len(fields)} fields, expected 'value i j k l'")
    try:
        value = float(fields[0])
        label = tuple(int(x) for x in fields[1:])
    except ValueError:
        raise InputError(
            f"malformed FCIDUMP {path}: line {number} is not 'value i j k l': {' '.join(fields)}"
        ) from None
    if not math.isfinite(value):
        raise InputError(f"malformed FCIDUMP {path}: line {number} has a non-finite integral ({fields[0]})")
    i, j, k, m = label
    outside = [x for x in label if x < 0 or x > norb]
    if outside:
        raise InputError(f"malformed FCIDUMP {path}: line {number} refers to orbital {outside[0]} but NORB={norb}")
    two_electron = i and j and k and m
    one_electron = i and j and not k and not m
    other = not j and not k and not m  # core energy (0 0 0 0) or an orbital energy (i 0 0 0)
    if not (two_electron or one_electron or other):
        raise InputError(f"malformed FCIDUMP {path}: line {number} has an invalid index pattern {i} {j} {k} {m}")
    return i, j, k, m


def scan_fcidump(path: str | os.PathLike[str]) -> FcidumpShape:
    """Check an FCIDUMP's header against its integral lines, before PySCF reads it.

    PySCF's reader trusts NORB: an orbital index beyond it ends in an IndexError on a packed
    array (or, negative, silently wraps round), a blank line silently ends the integrals,
    and orbitals that no integral mentions become orbitals of zero energy. Every real
    active orbital has a non-zero (ii|ii), so an orbital absent from every line means NORB
    is larger than the system the integrals describe.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            header, n_header = _read_header(handle, path)
            norb = header["NORB"]
            if norb < 1:
                raise InputError(f"malformed FCIDUMP {path}: NORB={norb}")
            seen = np.zeros(norb + 1, dtype=bool)
            kinds: set[str] = set()
            blank_at = 0
            for number, line in enumerate(handle, start=n_header + 1):
                fields = line.replace(",", " ").split()
                if not fields:
                    blank_at = blank_at or number
                    continue
                if blank_at:
                    raise InputError(
                        f"malformed FCIDUMP {path}: line {blank_at} is blank but integrals follow "
                        "(PySCF stops reading at a blank line)"
                    )
                label = _integral_label(fields, number, path, norb)
                seen[list(label)] = True
                kinds.add("core" if not any(label) else "one" if label[1] and not label[2] else "other")
    except OSError as exc:
        raise InputError(f"cannot read FCIDUMP {path}: {exc.strerror or exc}") from None
    for kind, what in (("one", "one-electron integrals ('value i j 0 0')"), ("core", "core energy ('value 0 0 0 0')")):
        if kind not in kinds:
            raise InputError(
                f"malformed FCIDUMP {path}: no {what} line: the file is truncated or incomplete "
                "(PySCF and Molpro write these after the two-electron integrals)"
            )
    missing = np.flatnonzero(~seen[1:]) + 1
    if len(missing):
        listed = ", ".join(str(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise InputError(
            f"malformed FCIDUMP {path}: NORB={norb} but no integral mentions orbital(s) {listed}; "
            "NORB does not match the integrals"
        )
    return FcidumpShape(norb=norb, n_electrons=header["NELEC"], ms2=header.get("MS2", 0))


def fcidump_electrons(shape: FcidumpShape, path: str | os.PathLike[str]) -> tuple[int, int]:
    """(N_alpha, N_beta) an FCIDUMP header declares, checked against its orbitals.

    A header PySCF would accept but no determinant fits (more electrons of one spin than
    orbitals, an MS2 of the wrong parity) is refused here instead of deep in the solver.
    """
    norb, n_electrons, ms2 = shape.norb, shape.n_electrons, shape.ms2
    if n_electrons < 1:
        raise InputError(f"malformed FCIDUMP {path}: NELEC={n_electrons}, the system has no electrons")
    if n_electrons > 2 * norb:
        raise InputError(f"malformed FCIDUMP {path}: NELEC={n_electrons} electrons do not fit NORB={norb} orbitals")
    if (n_electrons - ms2) % 2 or abs(ms2) > n_electrons:
        raise InputError(
            f"malformed FCIDUMP {path}: MS2={ms2} is impossible with NELEC={n_electrons} "
            "(MS2 = N_alpha - N_beta must have the parity of NELEC and not exceed it)"
        )
    nelec = ((n_electrons + ms2) // 2, (n_electrons - ms2) // 2)
    if max(nelec) > norb:
        raise InputError(
            f"malformed FCIDUMP {path}: {max(nelec)} electrons of one spin (NELEC={n_electrons}, MS2={ms2}) "
            f"do not fit NORB={norb} orbitals"
        )
    return nelec
