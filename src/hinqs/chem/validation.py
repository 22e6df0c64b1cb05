"""Checks of user input that PySCF and NumPy accept but that would fail later, or silently mislead.

Each check raises :class:`hinqs.errors.InputError` with one line naming the problem, so
whichever command reads the input ends with that line and exit code 2 instead of a traceback
from deep inside an SCF, a Davidson solver or a training loop, and before anything is written.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.errors import InputError

# Two nuclei closer than this are a typo, not chemistry. The shortest bond there is (H2) is
# 0.74 A and potential-energy scans rarely go below 0.3 A; at 0.1 A two protons repel with
# 5.3 Ha and the HF energy of H2 is +2.7 Ha. PySCF still "converges" there (measured down to
# 0.01 A), so without this check a misplaced decimal point gives a meaningless run, and two
# atoms at the same point end in a traceback from the SCF's initial guess.
MIN_ATOM_DISTANCE_ANGSTROM = 0.1


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
    if len(lines[0].split()) < 4:
        return  # Z-matrix input: PySCF checks its own format
    for number, line in enumerate(lines, start=1):
        if len(line.split()) != 4:
            raise InputError(
                f"system {name!r}: atom {number} ({line!r}) has {len(line.split())} fields; "
                "a Cartesian geometry line is 'symbol x y z'"
            )


def _looks_like_path(line: str) -> bool:
    return len(line.split()) == 1 and ("/" in line or line.lower().endswith((".xyz", ".zmat", ".txt")))


def check_atom_positions(name: str, symbols: Sequence[str], coords_angstrom: np.ndarray) -> None:
    """Refuse non-finite coordinates and atoms closer than :data:`MIN_ATOM_DISTANCE_ANGSTROM`.

    PySCF parses "nan" and "inf" as coordinates and builds the molecule; the SCF then fails
    with a traceback or returns NaN. Coincident atoms make the nuclear repulsion infinite.
    """
    coords = np.asarray(coords_angstrom, dtype=np.float64).reshape(-1, 3)
    for index in np.flatnonzero(~np.all(np.isfinite(coords), axis=1)):
        raise InputError(f"system {name!r}: atom {index + 1} ({symbols[index]}) has a non-finite coordinate")
    if len(coords) < 2:
        return
    distances = np.linalg.norm(coords[:, None, :] - coords[None, :, :], axis=-1)
    distances[np.diag_indices(len(coords))] = np.inf
    i, j = np.unravel_index(int(np.argmin(distances)), distances.shape)
    i, j = min(i, j), max(i, j)
    if distances[i, j] < MIN_ATOM_DISTANCE_ANGSTROM:
        raise InputError(
            f"system {name!r}: atoms {i + 1} ({symbols[i]}) and {j + 1} ({symbols[j]}) are "
            f"{distances[i, j]:.4g} Angstrom apart (closer than {MIN_ATOM_DISTANCE_ANGSTROM}): check the geometry"
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
                seen[list(_integral_label(fields, number, path, norb))] = True
    except OSError as exc:
        raise InputError(f"cannot read FCIDUMP {path}: {exc.strerror or exc}") from None
    missing = np.flatnonzero(~seen[1:]) + 1
    if len(missing):
        listed = ", ".join(str(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise InputError(
            f"malformed FCIDUMP {path}: NORB={norb} but no integral mentions orbital(s) {listed}; "
            "NORB does not match the integrals"
        )
    return FcidumpShape(norb=norb, n_electrons=header["NELEC"], ms2=header.get("MS2", 0))
