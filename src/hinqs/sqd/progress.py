"""A long Davidson solve says how far it is and how long it has left.

At 52 qubits one solve of 2.25 M determinants takes minutes; a user watching the step's log
(or the console under Snakemake) must see that it is alive and when it will end. PySCF's
Davidson (``lib.davidson1``) calls ``callback(locals())`` once per cycle; :class:`DavidsonProgress`
turns that into one line: the cycle, the residual ``|r|``, the energy, the seconds per
cycle, and the estimated time left. The estimate assumes the residual keeps falling at its
average rate so far (Davidson converges about geometrically) until it reaches the
convergence threshold ``sqrt(conv_tol)`` (PySCF's ``toloose``), capped by ``max_cycle``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO


def remaining_cycles(residuals: list[float], threshold: float, cycles_left: int) -> int | None:
    """Cycles until ``threshold`` at the average geometric rate of ``residuals``; None without a rate."""
    if not residuals:
        return None
    if residuals[-1] <= threshold:
        return 0
    if len(residuals) < 2 or residuals[0] <= 0 or residuals[-1] >= residuals[0]:
        return None
    rate = math.log(residuals[-1] / residuals[0]) / (len(residuals) - 1)  # < 0
    return min(cycles_left, max(1, math.ceil(math.log(threshold / residuals[-1]) / rate)))


@dataclass
class DavidsonProgress:
    """Davidson's per-cycle callback: one progress line per cycle on ``stream``."""

    conv_tol: float
    max_cycle: int
    ecore: float = 0.0
    stream: TextIO | None = None  # None: sys.stderr at the time of the line
    started: float = field(default_factory=time.perf_counter)
    residuals: list[float] = field(default_factory=list)

    def __call__(self, envs: dict[str, Any]) -> None:
        cycle = int(envs.get("icyc", len(self.residuals)))  # PySCF's own count, from 0
        residual = float(envs.get("max_dx_norm", float("nan")))
        energy = envs.get("e")
        energy = float(energy[0] if hasattr(energy, "__len__") else energy) + self.ecore if energy is not None else None
        self.residuals.append(residual)
        elapsed = time.perf_counter() - self.started
        per_cycle = elapsed / (cycle + 1)
        left = remaining_cycles(self.residuals, math.sqrt(self.conv_tol), self.max_cycle - cycle - 1)
        eta = "time left unknown" if left is None else f"about {left} more cycle(s), {_duration(left * per_cycle)} left"
        text = f"davidson cycle {cycle}: |r| {residual:.3g}"
        if energy is not None:
            text += f", electronic energy {energy:.10f} Ha"
        print(f"{text}, {per_cycle:.1f} s/cycle, {eta}", file=self.stream or sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
