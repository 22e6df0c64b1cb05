"""Step: whether the loop stops after this iteration, and the next iteration's cap -> status.json."""

from __future__ import annotations

import math
import os
from typing import Any

from hinqs.errors import InputError
from hinqs.io.files import StepResult, read_json, read_result
from hinqs.loop.convergence import Evidence, GrowthContext, Status, next_status, read_status, write_status
from hinqs.loop.settings import RunSettings


def _best_shape(result: StepResult) -> tuple[int, int]:
    """The product shape (alpha x beta strings) of the batch whose energy was taken."""
    for batch in result.batches:
        if batch.get("index") == result.best_batch and batch.get("product_shape"):
            na, nb = batch["product_shape"]
            return int(na), int(nb)
    return 0, 0


def _pt2_of(path: str | os.PathLike[str] | None) -> tuple[float | None, float, int]:
    """E_PT2, its 95 % half-width and its intruder count from pt2.json (None, 0, 0 when PT2 was
    off or not given)."""
    if not path:
        return None, 0.0, 0
    record: dict[str, Any] = read_json(path, "PT2 record")
    if record.get("e_pt2") is None:
        return None, 0.0, 0
    values = (record["e_pt2"], record.get("e_pt2_ci95") or 0.0)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise InputError(f"{path}: not a PT2 record (e_pt2 {values[0]!r}, e_pt2_ci95 {values[1]!r})")
    intruders = record.get("intruders") or 0
    if not isinstance(intruders, int) or isinstance(intruders, bool) or intruders < 0:
        raise InputError(f"{path}: not a PT2 record (intruders {intruders!r})")
    return float(values[0]), float(values[1]), intruders


def evidence_of(result: StepResult, pt2: str | os.PathLike[str] | None, cap: int) -> Evidence:
    """What the stop rule reads besides the energy: the PT2, the strings solved, the cap."""
    e_pt2, half, intruders = _pt2_of(pt2)
    return Evidence(e_pt2=e_pt2, e_pt2_ci95=half, strings=max(_best_shape(result)), cap=cap, intruders=intruders)


def growth_context(settings: RunSettings, hamiltonian: str | os.PathLike[str]) -> GrowthContext:
    """The system's size and the limits the next cap is chosen within."""
    from hinqs.io.hamiltonian import active_shape, read_meta
    from hinqs.loop.defaults import SystemSize

    norb, nelec = active_shape(read_meta(hamiltonian), hamiltonian)
    return GrowthContext(
        size=SystemSize(norb, nelec),
        accuracy=settings.accuracy,
        determinants=settings.growth_determinants(),
        fixed=not settings.accuracy.grows(settings.subspace.max_strings is not None),
    )


def check(
    settings: RunSettings,
    iteration: int,
    result: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    previous_status: str | os.PathLike[str] | None = None,
    pt2: str | os.PathLike[str] | None = None,
    hamiltonian: str | os.PathLike[str] | None = None,
) -> Status:
    """Decide from this iteration's merged energy, its PT2 and the previous status; write ``out``.

    ``settings`` as in the config (``null`` sizes unresolved: an explicit cap is fixed, a
    derived one may grow); ``hamiltonian`` gives the system's size, without which the cap
    never grows and no stop is called accurate."""
    previous = read_status(previous_status) if previous_status else None
    merged = read_result(result)
    growth, cap = None, 0
    if hamiltonian is not None:
        growth = growth_context(settings, hamiltonian)
        resolved = settings.for_system(growth.size.norb, growth.size.nelec).subspace.max_strings or 0
        cap = resolved if previous is None or previous.next_strings_cap is None else previous.next_strings_cap
    rules = settings.iterations
    status = next_status(
        previous, iteration, merged.energy, tol=rules.tol, window=rules.window, max_iterations=rules.max,
        evidence=evidence_of(merged, pt2, cap), growth=growth,
    )  # fmt: skip
    write_status(out, status)
    return status
