"""One reader and one writer per file format a run passes between its steps.

Formats (every writer is atomic, see :mod:`hinqs.io.atomic`):

- determinant sets (``samples.npz``, ``subspace.npz``, any pool): ``alpha``, ``beta``
  (uint64 CI strings), optional ``counts``; samples add ``log_prob`` (the model's log p);
- ground states (``sqd/state.npz``): ``ci_strs_a``, ``ci_strs_b``, ``amplitudes``
  (``len(a) x len(b)``), ``occ_a``, ``occ_b``, ``energy``, ``batch_index``;
- step results (``sqd/result.json``, written by :mod:`hinqs.sqd.step`): the merged energy
  and every batch's record;
- convergence status (``status.json``): see :mod:`hinqs.convergence`.

Readers turn a missing, foreign or corrupt file into one-line :class:`InputError`.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.errors import InputError
from hinqs.io.atomic import save_npz, write_json
from hinqs.io.determinants import Determinants

_NPZ_ERRORS = (OSError, ValueError, zipfile.BadZipFile, EOFError)


def _open_npz(path: Path, kind: str, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file that must hold ``required``; one-line errors."""
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise InputError(f"{kind} not found: {path}") from None
    except _NPZ_ERRORS as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [key for key in required if key not in arrays]
    if missing:
        raise InputError(f"{path}: {kind} lacks {', '.join(missing)}")
    return arrays


# -- determinant sets --------------------------------------------------------------------


def _determinants_from(arrays: dict[str, np.ndarray], path: Path) -> Determinants:
    alpha, beta, counts = arrays["alpha"], arrays["beta"], arrays.get("counts")
    for name, array in (("alpha", alpha), ("beta", beta)):
        if not np.issubdtype(array.dtype, np.integer):
            raise InputError(f"{path}: {name} must hold integer CI strings, got {array.dtype}")
    if alpha.ndim != 1 or alpha.shape != beta.shape:
        raise InputError(f"{path}: 'alpha' and 'beta' must be 1-d arrays of one length")
    if counts is not None:
        if np.issubdtype(counts.dtype, np.integer):
            counts = counts.astype(np.int64)
        elif np.issubdtype(counts.dtype, np.floating):
            counts = counts.astype(np.float64)
        else:
            raise InputError(f"{path}: counts must be numbers, got {counts.dtype}")
        if counts.shape != alpha.shape:
            raise InputError(f"{path}: 'counts' must have one entry per determinant")
    return Determinants(alpha.astype(np.uint64), beta.astype(np.uint64), counts)


def read_determinants(path: str | os.PathLike[str], kind: str = "determinant file") -> Determinants:
    """A determinant set; integer CI strings become uint64, counts stay absent when absent."""
    path = Path(path)
    return _determinants_from(_open_npz(path, kind, ("alpha", "beta")), path)


def write_determinants(path: str | os.PathLike[str], dets: Determinants) -> None:
    """Write a determinant set (with counts, ones if it has none)."""
    save_npz(path, alpha=dets.alpha, beta=dets.beta, counts=dets.weights())


@dataclass(frozen=True)
class Samples:
    """What ``hinqs sample`` draws: unique determinants, their counts and log p(x)."""

    determinants: Determinants
    log_prob: np.ndarray | None

    def sampled_mass(self) -> float | None:
        """Sum of p(x) over the drawn determinants (None when log p was not stored)."""
        return None if self.log_prob is None else float(np.exp(self.log_prob).sum())


def read_samples(path: str | os.PathLike[str]) -> Samples:
    """A samples file; ``log_prob`` is optional (any determinant set reads as samples)."""
    path = Path(path)
    arrays = _open_npz(path, "samples file", ("alpha", "beta"))
    log_prob = arrays.get("log_prob")
    return Samples(_determinants_from(arrays, path), None if log_prob is None else log_prob.astype(np.float64))


def write_samples(path: str | os.PathLike[str], dets: Determinants, log_prob: np.ndarray) -> None:
    """Write sampled determinants with their counts and log p."""
    save_npz(path, alpha=dets.alpha, beta=dets.beta, counts=dets.weights(), log_prob=log_prob)


# -- ground states -------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundState:
    """A batch's ground state over the product space ``ci_strs_a x ci_strs_b``."""

    ci_strs_a: np.ndarray
    ci_strs_b: np.ndarray
    amplitudes: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # occ_a, occ_b, energy, batch_index


def read_state(path: str | os.PathLike[str]) -> GroundState:
    """A ``state.npz``: amplitudes reshaped to ``len(a) x len(b)``, strings as uint64."""
    path = Path(path)
    arrays = _open_npz(path, "ground state", ("ci_strs_a", "ci_strs_b", "amplitudes"))
    strs_a = np.asarray(arrays.pop("ci_strs_a")).astype(np.uint64)
    strs_b = np.asarray(arrays.pop("ci_strs_b")).astype(np.uint64)
    amps = np.asarray(arrays.pop("amplitudes"), dtype=np.float64)
    if amps.size != len(strs_a) * len(strs_b):
        raise InputError(f"{path}: {amps.size} amplitudes do not fit {len(strs_a)} x {len(strs_b)} strings")
    return GroundState(strs_a, strs_b, amps.reshape(len(strs_a), len(strs_b)), arrays)


def write_state(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], energy: float, batch_index: int) -> None:
    """Write the winning batch's state arrays with its energy and index."""
    save_npz(path, **arrays, energy=np.float64(energy), batch_index=np.int64(batch_index))


# -- step results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    """``sqd/result.json``: the merged energy and each batch's record."""

    energy: float
    best_batch: int
    batches: list[dict[str, Any]]
    data: dict[str, Any]

    @property
    def batch_energies(self) -> dict[int, float | None]:
        return {int(b["index"]): b.get("energy") for b in self.batches}

    @property
    def wall_seconds(self) -> float | None:
        return self.data.get("timing", {}).get("wall_seconds")

    def best_record(self) -> dict[str, Any]:
        return next(b for b in self.batches if b.get("index") == self.best_batch)


def read_result(path: str | os.PathLike[str]) -> StepResult:
    """An SQD step's ``result.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        return StepResult(float(data["energy"]), int(data["best_batch"]), list(data.get("batches", [])), data)
    except FileNotFoundError:
        raise InputError(f"step result not found: {path}") from None
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"cannot read the merged energy from {path}: {exc}") from None


def write_result(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write an SQD step's ``result.json`` (the step's commit marker: written last)."""
    write_json(path, data)


def read_json_or_none(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A small JSON side file (sample statistics, training history) or None when absent."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None
