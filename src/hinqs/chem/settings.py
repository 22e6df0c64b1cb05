"""Settings of the chemistry: which reference energies ``hinqs prepare`` computes.

The config schema (``schemas/config.schema.yaml``) owns every default: this class has none,
and :meth:`hinqs.loop.settings.RunSettings.from_config` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReferenceSettings:
    """``references``: which reference energies ``hinqs prepare`` computes."""

    fci_max_determinants: int
    ccsd: bool
    sci: bool | None  # None: the selected-CI series only where FCI is skipped
    sci_cutoffs: list[float]
    sci_max_seconds: float
