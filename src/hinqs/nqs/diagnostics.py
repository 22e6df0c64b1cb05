"""What the sample and train steps report besides their files: new determinants, collapse checks."""

from __future__ import annotations

from typing import Any

from hinqs.io.determinants import Determinants
from hinqs.io.files import Samples
from hinqs.nqs.settings import NQSSettings

EXACT_MASS_MAX = 8192  # previous determinants up to which the model's mass on them is computed exactly


def new_against(dets: Determinants, previous: Determinants, n_samples: int) -> dict[str, Any]:
    """How many of the drawn determinants the previous subspace lacks, and their sample share."""
    from hinqs.nqs.trainer import known_mask

    new = ~known_mask(dets.alpha, dets.beta, previous.alpha, previous.beta)
    return {
        "n_known": len(previous),
        "n_new_unique": int(new.sum()),
        "new_sample_fraction": float(dets.weights()[new].sum() / n_samples),
    }


def previous_summary(
    state: Any, nqs: NQSSettings, iteration: int, previous: Samples, probe_samples: int
) -> dict[str, Any]:
    """The model's mass on the determinants sampled before training, and what a probe finds new."""
    from hinqs.nqs.trainer import probe_new, support_mass

    dets = previous.determinants
    summary: dict[str, Any] = {"n_unique": len(dets), "mass_before": previous.sampled_mass()}
    if len(dets) <= EXACT_MASS_MAX:
        summary["mass_after"] = support_mass(state.model, dets.alpha, dets.beta)
    if probe_samples:
        summary.update(
            probe_new(
                state.model, probe_samples, state.seed, iteration, dets.alpha, dets.beta, nqs.temperature, nqs.max_batch
            )
        )
    return summary
