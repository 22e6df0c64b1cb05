"""Merging batch results: the lowest energy among the successful batches wins.

Every batch solves a variational subspace problem, so each energy is an upper bound to the
exact one and the lowest is the best estimate; its state (amplitudes, CI strings,
occupancies) is the one the next stage trains on. Failed batches are skipped. Ties go to
the lower batch index, so the choice never depends on the order batches finished in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hinqs.sqd.task import OK


def select_best(records: Sequence[dict[str, Any]]) -> int | None:
    """Index of the successful batch with the lowest energy, or None when none succeeded."""
    ok = [r for r in records if r["status"] == OK and r["energy"] is not None]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["energy"], r["index"]))["index"]


def failure_summary(records: Sequence[dict[str, Any]], limit: int = 4) -> str:
    """One line naming the failed batches and why, for the step's error message."""
    failed = [r for r in records if r["status"] != OK]
    parts = [f"batch {r['index']}: {r['error']}" for r in failed[:limit]]
    if len(failed) > limit:
        parts.append(f"and {len(failed) - limit} more")
    return "; ".join(parts)
