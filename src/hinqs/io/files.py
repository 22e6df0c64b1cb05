"""One reader and one writer per file format a run passes between its steps.

Formats (every writer is atomic, see :mod:`hinqs.io.atomic`):

- determinant sets (``samples.npz``, ``subspace.npz``, any other set): ``alpha``, ``beta``
  (uint64 CI strings), optional ``counts``; samples add ``log_prob`` (the model's log p);
- ground states (``sqd/state.npz``): ``ci_strs_a``, ``ci_strs_b``, ``amplitudes``
  (``len(a) x len(b)``), ``occ_a``, ``occ_b``, ``energy``, ``batch_index``;
- step results (``sqd/result.json``, written by :mod:`hinqs.sqd.step`): the merged energy
  and every batch's record;
- model checkpoints (``model.pt``): ``torch.save`` of a dict, see :mod:`hinqs.nqs.checkpoint`;
- convergence status (``status.json``): see :mod:`hinqs.loop.convergence`.

Readers turn a missing, foreign or corrupt file into one-line :class:`InputError`.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.errors import InputError
from hinqs.io.atomic import atomic_path, save_npz, write_json
from hinqs.io.determinants import Determinants, check_strings

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
    """The one samples type: unique determinants drawn from the model, their counts and log p(x).

    What :func:`hinqs.nqs.sampler.sample_unique` returns (sorted by ``(alpha, beta)``, with the
    tempered sampler's log-probabilities) and what :func:`read_samples` reads back (any
    determinant set reads as samples; ``log_prob`` is then None). Iterating yields
    ``alpha, beta, counts`` so that ``a, b, c = sample_unique(...)`` works.
    """

    alpha: np.ndarray  # uint64 CI strings
    beta: np.ndarray  # uint64 CI strings
    counts: np.ndarray | None  # int64, sums to n_samples
    log_prob: np.ndarray | None  # float64, the model's log p(x) at temperature 1
    log_prob_sampled: np.ndarray | None = None  # float64, under the tempered sampler (not stored)
    temperature: float | None = None
    n_samples: int | None = None

    def __iter__(self) -> Iterator[np.ndarray | None]:
        return iter((self.alpha, self.beta, self.counts))

    def __len__(self) -> int:
        return len(self.alpha)

    @property
    def determinants(self) -> Determinants:
        return Determinants(self.alpha, self.beta, self.counts)

    def sampled_mass(self) -> float | None:
        """Sum of p(x) over the drawn determinants (None when log p was not stored)."""
        return None if self.log_prob is None else float(np.exp(self.log_prob).sum())


def read_samples(path: str | os.PathLike[str]) -> Samples:
    """A samples file; ``log_prob`` is optional (any determinant set reads as samples)."""
    path = Path(path)
    arrays = _open_npz(path, "samples file", ("alpha", "beta"))
    log_prob = arrays.get("log_prob")
    dets = _determinants_from(arrays, path)
    return Samples(dets.alpha, dets.beta, dets.counts, None if log_prob is None else log_prob.astype(np.float64))


def write_samples(path: str | os.PathLike[str], samples: Samples) -> None:
    """Write sampled determinants with their counts and log p."""
    save_npz(
        path,
        alpha=samples.alpha,
        beta=samples.beta,
        counts=samples.determinants.weights(),
        log_prob=samples.log_prob,
    )


# -- ground states -------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundState:
    """The one ground-state type: amplitudes over the product space ``strs_a x strs_b``.

    What a solver returns for a batch, what the engine keeps of the winning batch
    (``sqd/state.npz``), the teacher of the subspace expansion and of the NQS training,
    and the HF determinant as a teacher (amplitude 1). ``occ_a``/``occ_b`` (orbital
    occupations), ``energy``, ``batch_index`` and ``hamiltonian`` (which integrals the energy
    belongs to) are present where the file has them.
    """

    strs_a: np.ndarray  # uint64 CI strings
    strs_b: np.ndarray
    amplitudes: np.ndarray  # float64, len(strs_a) x len(strs_b)
    occ_a: np.ndarray | None = None
    occ_b: np.ndarray | None = None
    energy: float | None = None
    batch_index: int | None = None
    source: str = "ground state"  # the file it came from, for error messages
    hamiltonian: str | None = None  # hamiltonian_id of the integrals ``energy`` was solved in

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The arrays under their on-disk names (``state.npz`` and the per-batch ``.npz``)."""
        arrays = {
            "ci_strs_a": np.asarray(self.strs_a, dtype=np.uint64),
            "ci_strs_b": np.asarray(self.strs_b, dtype=np.uint64),
            "amplitudes": np.asarray(self.amplitudes, dtype=np.float64),
        }
        for name in ("occ_a", "occ_b"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = np.asarray(value, dtype=np.float64)
        return arrays

    def on(self, strs_a: np.ndarray, strs_b: np.ndarray) -> np.ndarray:
        """The amplitudes on another product space ``strs_a x strs_b`` (sorted, unique strings):
        zero where this state holds no determinant (a warm start's guess, PT2's embedded Psi)."""
        out = np.zeros((len(strs_a), len(strs_b)))
        rows_from, rows_to = _shared(self.strs_a, strs_a)
        cols_from, cols_to = _shared(self.strs_b, strs_b)
        out[np.ix_(rows_to, cols_to)] = np.asarray(self.amplitudes, np.float64)[np.ix_(rows_from, cols_from)]
        return out

    def string_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Each alpha and each beta string's summed |c|^2 over the other spin (:func:`square_sums`)."""
        return square_sums(self.amplitudes)

    def sorted(self) -> GroundState:
        """The same state with each spin's strings in ascending order (amplitudes permuted along);
        itself when they already are (no copy of the amplitudes: a state of 10^8 determinants
        is GBs)."""
        if all(len(s) < 2 or bool(np.all(s[1:] > s[:-1])) for s in (self.strs_a, self.strs_b)):
            return self
        oa, ob = np.argsort(self.strs_a, kind="stable"), np.argsort(self.strs_b, kind="stable")
        return replace(self, strs_a=self.strs_a[oa], strs_b=self.strs_b[ob], amplitudes=self.amplitudes[np.ix_(oa, ob)])


SQUARE_ROWS = 256  # rows of amplitudes squared at a time by square_sums


def square_sums(amps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(amps**2).sum(axis=1)`` and ``(amps**2).sum(axis=0)`` to the last bit, squaring
    :data:`SQUARE_ROWS` rows at a time instead of the whole matrix (a state-sized temporary:
    the PT2 step's largest after the state itself). The column sums add the squared rows in
    row order, as NumPy's reduction over the first axis does."""
    amps = np.asarray(amps, dtype=np.float64)
    rows, cols = np.empty(amps.shape[0]), np.zeros(amps.shape[1])
    for start in range(0, amps.shape[0], SQUARE_ROWS):
        block = amps[start : start + SQUARE_ROWS] ** 2
        rows[start : start + len(block)] = block.sum(axis=1)
        for row in block:
            cols += row
    return rows, cols


def _shared(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``source`` and into ``target`` (sorted, unique) of the strings both hold."""
    source, target = np.asarray(source, np.uint64), np.asarray(target, np.uint64)
    where = np.searchsorted(target, source)
    inside = where < len(target)
    hit = np.zeros(len(source), bool)
    hit[inside] = target[where[inside]] == source[inside]
    return np.flatnonzero(hit), where[hit]


def check_state(state: GroundState, norb: int, nelec: tuple[int, int]) -> None:
    """A ground state must be of the run's system: strings within ``norb`` holding ``nelec`` electrons.

    A state of another system would otherwise be expanded into determinants of the wrong
    electron count or trained on, which only a later step would trip over.
    """
    check_strings(state.strs_a, norb, nelec[0], f"{state.source}: ci_strs_a")
    check_strings(state.strs_b, norb, nelec[1], f"{state.source}: ci_strs_b")


def read_state(
    path: str | os.PathLike[str],
    *,
    sort: bool = False,
    norb: int | None = None,
    nelec: tuple[int, int] | None = None,
) -> GroundState:
    """A ground-state file (``state.npz`` or a batch's ``.npz``): amplitudes reshaped to
    ``len(a) x len(b)``, strings as uint64.

    ``sort`` refuses non-finite amplitudes and sorts the strings (what a teacher needs); with
    ``norb`` and ``nelec`` (the run's Hamiltonian) a state of another system is refused.
    """
    path = Path(path)
    arrays = _open_npz(path, "ground state", ("ci_strs_a", "ci_strs_b", "amplitudes"))
    strs_a = np.asarray(arrays.pop("ci_strs_a")).astype(np.uint64)
    strs_b = np.asarray(arrays.pop("ci_strs_b")).astype(np.uint64)
    amps = np.asarray(arrays.pop("amplitudes"), dtype=np.float64)
    if amps.size != len(strs_a) * len(strs_b):
        raise InputError(f"{path}: {amps.size} amplitudes do not fit {len(strs_a)} x {len(strs_b)} strings")
    energy, index, solved_in = arrays.get("energy"), arrays.get("batch_index"), arrays.get("hamiltonian")
    state = GroundState(
        strs_a,
        strs_b,
        amps.reshape(len(strs_a), len(strs_b)),
        occ_a=arrays.get("occ_a"),
        occ_b=arrays.get("occ_b"),
        energy=None if energy is None else float(energy),
        batch_index=None if index is None else int(index),
        source=str(path),
        hamiltonian=None if solved_in is None else str(solved_in),
    )
    if sort:
        if not np.all(np.isfinite(state.amplitudes)):
            raise InputError(f"{path}: amplitudes contain non-finite values")
        state = state.sorted()
    if norb is not None and nelec is not None:
        check_state(state, norb, nelec)
    return state


def write_batch_state(path: str | os.PathLike[str], state: GroundState) -> None:
    """Write one batch's ground state (strings, amplitudes, occupations)."""
    save_npz(path, **state.as_arrays())


def write_state(
    path: str | os.PathLike[str], state: GroundState, energy: float, batch_index: int, hamiltonian: str | None = None
) -> None:
    """Write the winning batch's ground state with the merged energy, the batch's index and the
    ``hamiltonian_id`` of the integrals it was solved in (so a later step may reuse the energy)."""
    extra = {} if hamiltonian is None else {"hamiltonian": np.str_(hamiltonian)}
    save_npz(path, **state.as_arrays(), energy=np.float64(energy), batch_index=np.int64(batch_index), **extra)


# -- step results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    """The one type of ``sqd/result.json``: the merged energy and each batch's record.

    What :func:`hinqs.sqd.run_diagonalization` returns and :func:`read_result` reads back;
    ``data`` is the whole file, ``path`` where it lies.
    """

    energy: float
    best_batch: int
    batches: list[dict[str, Any]]
    data: dict[str, Any]
    path: Path | None = None

    @property
    def summary(self) -> dict[str, Any]:
        return self.data

    @property
    def batch_energies(self) -> list[float | None]:
        """Each batch's energy in batch order (None for a failed batch)."""
        return list(self.data.get("batch_energies", [b.get("energy") for b in self.batches]))

    @property
    def energies_by_batch(self) -> dict[int, float | None]:
        return {int(b["index"]): b.get("energy") for b in self.batches}

    @property
    def wall_seconds(self) -> float | None:
        return self.data.get("timing", {}).get("wall_seconds")

    @property
    def result_path(self) -> Path:
        if self.path is None:
            raise ValueError("this step result was not read from or written to a file")
        return self.path

    @property
    def state_path(self) -> Path:
        return self.result_path.with_name("state.npz")

    def best_record(self) -> dict[str, Any]:
        return next(b for b in self.batches if b.get("index") == self.best_batch)

    def load_state(self) -> GroundState:
        """The winning batch's ground state (``state.npz`` beside ``result.json``)."""
        return read_state(self.state_path)


def batch_record(record: dict[str, Any]) -> dict[str, Any]:
    """A batch's record with today's keys: files written before the rename say
    ``subspace_shape`` for the batch's K_alpha x K_beta ``product_shape``."""
    if "subspace_shape" in record and "product_shape" not in record:
        record = {("product_shape" if k == "subspace_shape" else k): v for k, v in record.items()}
    return record


def step_result(data: dict[str, Any], path: str | os.PathLike[str] | None = None) -> StepResult:
    """A :class:`StepResult` from the mapping ``result.json`` holds (older files read too)."""
    return StepResult(
        float(data["energy"]),
        int(data["best_batch"]),
        [batch_record(b) for b in data.get("batches", [])],
        data,
        None if path is None else Path(path),
    )


def read_result(path: str | os.PathLike[str]) -> StepResult:
    """An SQD step's ``result.json``."""
    path = Path(path)
    try:
        result = step_result(json.loads(path.read_text()), path)
    except FileNotFoundError:
        raise InputError(f"step result not found: {path}") from None
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"cannot read the merged energy from {path}: {type(exc).__name__}: {exc}") from None
    if not np.isfinite(result.energy):
        raise InputError(f"{path}: the merged energy is {result.energy!r}, not a finite number")
    return result


def write_result(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write an SQD step's ``result.json`` (the step's commit marker: written last)."""
    write_json(path, data)


# -- model checkpoints ----------------------------------------------------------------------

CHECKPOINT_FORMAT = "hinqs-nqs-checkpoint/1"


def write_checkpoint(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write a model checkpoint (the dict :func:`hinqs.nqs.checkpoint.checkpoint_dict` builds).

    Serialised in memory first and written with a plain file write: torch's own zip writer
    reports a full disk as a RuntimeError from C++, whereas a plain write raises the OSError
    that :func:`hinqs.io.atomic.atomic_path` turns into one line.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(data, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(buffer.getbuffer())


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A model checkpoint's dict (tensors on the CPU, ``weights_only``); one-line errors."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"model checkpoint not found: {path}") from None
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise InputError(f"{path}: not a readable model checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a hinqs NQS checkpoint (expected format {CHECKPOINT_FORMAT})")
    return data


def read_json(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """A JSON object file (``kind`` names it in messages); missing, unreadable, not JSON or
    not an object is one line (:class:`InputError`), never a traceback."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{kind} not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: {kind} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except (OSError, ValueError) as exc:  # a folder, no permission, bytes that are not UTF-8
        raise InputError(f"{path}: cannot read the {kind} ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: {kind} is not a JSON object (found {type(data).__name__})")
    return data


def read_json_or_none(path: str | os.PathLike[str], kind: str = "JSON side file") -> dict[str, Any] | None:
    """A small JSON side file (sample statistics, training history, PT2) or None when absent."""
    path = Path(path)
    return read_json(path, kind) if path.exists() else None


# -- Snakemake benchmark files --------------------------------------------------------------


def read_benchmark_seconds(path: str | os.PathLike[str]) -> float | None:
    """Wall seconds of a step from Snakemake's ``benchmark:`` file (tab-separated, column ``s``,
    last row), or None when the file is absent; anything else there is one line."""
    import csv
    import io
    import math

    path = Path(path)
    if not path.exists():
        return None
    what = "not a Snakemake benchmark file (a tab-separated table with a wall-seconds column 's')"
    try:
        reader = csv.DictReader(io.StringIO(path.read_text()), delimiter="\t")
        rows = list(reader)
        if not reader.fieldnames or "s" not in reader.fieldnames or not rows:
            raise InputError(f"{path}: {what}")
        seconds = float(rows[-1]["s"])
    except (OSError, ValueError, TypeError, csv.Error) as exc:
        raise InputError(f"{path}: {what}: {type(exc).__name__}: {exc}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"{path}: {what}: wall seconds {seconds!r}")
    return seconds
