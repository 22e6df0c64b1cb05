"""Per-batch result files: written atomically as each batch finishes, reused by a rerun.

``OUT/batches/batch_003.json`` holds the batch's record (status, energy, diagnostics) and
the fingerprint of its inputs; ``OUT/batches/batch_003.npz`` its state (``ci_strs_a``,
``ci_strs_b``, ``amplitudes``, ``occ_a``, ``occ_b``), only for a successful batch. The
``.npz`` is written first and the ``.json`` last, each atomically, so a ``.json`` that
says ``ok`` always has its state beside it.

A rerun of a step that was killed half-way (wall-time limit, node failure, Ctrl-C) reuses
every successful batch whose fingerprint matches and solves only the rest. The
fingerprint hashes what the result depends on: the integrals' sha256 (from meta.json),
the batch's subspace strings, the solver settings and, for a warm start, the guess state
(its strings and amplitudes, :func:`state_digest`): Davidson started elsewhere may stop on
another root or at other last bits, so a batch solved from another guess is not reused.
Thread counts and executors are
left out on purpose: they change at most the last bits of an energy. Failed batches are
not reused: a rerun tries them again.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.io.atomic import write_json
from hinqs.io.files import GroundState, batch_record, read_state, write_batch_state
from hinqs.io.layout import SQDFiles
from hinqs.sqd.settings import SolverSettings
from hinqs.sqd.task import OK, BatchOutcome

BATCH_FORMAT = "hinqs-sqd-batch/1"


def batch_paths(out_dir: Path, index: int) -> tuple[Path, Path]:
    """The ``.json`` record and ``.npz`` state paths of batch ``index``."""
    return SQDFiles(Path(out_dir)).batch(index)


def fingerprint(hamiltonian_meta: dict[str, Any], content_hash: str, solver: SolverSettings, guess: str | None) -> str:
    """sha256 over the inputs a batch result depends on (``guess``: the warm start's
    :func:`state_digest`, None for a cold start)."""
    key = {
        "format": BATCH_FORMAT,
        "integrals": hamiltonian_meta.get("sha256"),
        "ecore": hamiltonian_meta.get("ecore"),
        "nelec": hamiltonian_meta.get("nelec"),
        "batch": content_hash,
        "solver": solver.as_dict(),
    }
    if solver.device == "cpu":  # the numba kernel keeps the fingerprints written before sqd.device existed
        del key["solver"]["device"]
    if guess is not None:  # cold starts keep the fingerprints of files written before guesses were hashed
        key["guess"] = guess
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def state_digest(path: str | Path) -> str:
    """sha256 of a ground-state file's content (strings sorted, amplitudes permuted along):
    what a warm start reads of it, whatever the file's order, name or extra arrays."""
    state = read_state(path).sorted()
    digest = hashlib.sha256()
    for array, dtype in ((state.strs_a, "<u8"), (state.strs_b, "<u8"), (state.amplitudes, "<f8")):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return digest.hexdigest()


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def outcome_record(outcome: BatchOutcome) -> dict[str, Any]:
    """The JSON record of a batch outcome (no arrays); non-finite numbers become null."""
    na, nb = outcome.product_shape
    return {
        "index": outcome.index,
        "status": outcome.status,
        "energy": _finite_or_none(outcome.energy),
        "product_shape": [int(na), int(nb)],
        "n_determinants": int(na) * int(nb),
        "spin_sq": _finite_or_none(outcome.spin_sq),
        "converged": outcome.converged,
        "residual_norm": _finite_or_none(outcome.residual_norm),
        "seconds": outcome.seconds,
        "threads": outcome.threads,
        "attempts": outcome.attempt,
        "error": outcome.error,
        "error_kind": outcome.error_kind,
        "warnings": list(outcome.warnings),
        "worker": {"pid": outcome.pid, "host": outcome.host},
        "peak_rss_mb": outcome.peak_rss_mb,
        "reused": False,
    }


def save_outcome(
    out_dir: Path,
    outcome: BatchOutcome,
    fingerprint_hex: str,
    content_hash: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write one batch's files atomically (state first, record last); return the record.

    ``extra`` joins the record (e.g. the batch's ``cap``: what the dimension cap cut).
    """
    json_path, npz_path = batch_paths(out_dir, outcome.index)
    record = {**outcome_record(outcome), **(extra or {})}
    if outcome.status == OK and outcome.state is not None:
        write_batch_state(npz_path, outcome.state)
    elif npz_path.exists():
        npz_path.unlink()
    write_json(
        json_path,
        {"format": BATCH_FORMAT, "fingerprint": fingerprint_hex, "content_hash": content_hash, **record},
    )
    return record


def load_finished(out_dir: Path, index: int, fingerprint_hex: str) -> dict[str, Any] | None:
    """The record of a successful earlier run of this batch with the same inputs, else None."""
    json_path, npz_path = batch_paths(out_dir, index)
    try:
        data = json.loads(json_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None
    if (
        data.get("format") != BATCH_FORMAT
        or data.get("fingerprint") != fingerprint_hex
        or data.get("status") != OK
        or not npz_path.exists()
    ):
        return None
    record = batch_record({k: v for k, v in data.items() if k not in ("format", "fingerprint", "content_hash")})
    record["reused"] = True
    return record


def load_state(out_dir: Path, index: int) -> GroundState:
    """The saved ground state of batch ``index``."""
    _, npz_path = batch_paths(out_dir, index)
    return read_state(npz_path)
