"""Atomic output: write to a temporary name in the target folder, then rename.

A killed step or a bad input must never leave a half-written file that a rerun (or
Snakemake) would take for a finished one. ``os.replace`` within one folder is atomic on
POSIX file systems, including the parallel file systems of clusters.

A step with several outputs writes its side files (statistics, histories) first and the file
the next step reads last. Snakemake checks its incomplete-job markers only for the jobs of its
first DAG; a job added after a checkpoint (every iteration after the first), killed between
two writes, is not rerun by ``--rerun-incomplete`` when the file the next step asks for exists,
and a side file written after it would stay missing (its iteration's line in summary.json empty).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hinqs.errors import WriteFailed


def describe_os_error(target: str | os.PathLike[str], exc: OSError) -> str:
    """One line for a failed write: the target, the system's reason and its errno name."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    code = f" ({errno.errorcode[exc.errno]})" if exc.errno in errno.errorcode else ""
    return f"cannot write {target}: {reason}{code}"


def _flush_to_disk(path: Path) -> None:
    """fsync a finished temporary file before it is renamed into place.

    Network and parallel file systems (NFS, Lustre) may report a full disk or an exceeded
    quota only when the data leave the page cache; flushing here turns that into a failed
    write of the temporary file instead of a truncated file under the final name.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A write that fails with an ``OSError`` (no space left, quota, read-only or failing file
    system) becomes :class:`hinqs.errors.WriteFailed`: one line naming the target, the
    temporary file removed and ``path`` as it was before.
    """
    target = Path(path)
    tmp_path: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        _flush_to_disk(tmp_path)
        os.replace(tmp_path, target)
    except OSError as exc:
        raise WriteFailed(describe_os_error(target, exc)) from None
    finally:
        if tmp_path is not None:
            _remove_quietly(tmp_path)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """Save arrays to an uncompressed ``.npz`` atomically (numpy would append .npz to a bare tmp name)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save one array to ``.npy`` atomically, readable later with ``mmap_mode='r'``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` as a whole.

    Used where several files only make sense together (a Hamiltonian's arrays and the
    meta.json that carries their checksums). A failed write becomes
    :class:`hinqs.errors.WriteFailed` with the temporary folder removed.
    """
    target = Path(path)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        yield tmp
        for child in sorted(tmp.rglob("*")):
            if child.is_file():
                _flush_to_disk(child)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except OSError:
                os.replace(old, target)  # put the previous folder back: untouched, not absent
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        raise WriteFailed(describe_os_error(target, exc)) from None
    finally:
        if tmp is not None:
            _remove_quietly(tmp)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
