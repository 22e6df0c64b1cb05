"""Settings of the cumulative determinant subspace: PT2 expansion and the caps.

The config schema (``schemas/config.schema.yaml``) owns every default: this class has none,
and :meth:`hinqs.loop.settings.RunSettings.from_config` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExpansionSettings:
    """``subspace.expansion``: PT2-ranked single/double string excitations of the teacher."""

    strings: int | None  # None: derived from the system
    top_strings: int | None  # None: derived from the system (hinqs.loop.defaults)
    partner_strings: int | None


@dataclass(frozen=True)
class PT2Settings:
    """``pt2``: the EN-PT2 correction of each iteration's variational state."""

    max_dimension: int  # 0: off; the largest connected product summed completely
    relative_error: float  # semistochastic otherwise: the 95 % interval's half-width relative to |E_PT2|
    device: str  # cpu: the numba rows; cuda/auto: the torch rows on a GPU


@dataclass(frozen=True)
class SubspaceSettings:
    """``subspace``: how the cumulative determinant set grows (expansion) and is capped."""

    max_strings: int | None  # None: derived from the system
    max_size: int
    expansion: ExpansionSettings
