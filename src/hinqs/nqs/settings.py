"""NQS settings from a validated run config, including keys the schema may not list yet.

The schema's ``nqs`` section defines ``d_model, n_layers, n_heads, samples, epochs,
learning_rate, temperature, device``. The keys below are read with the default shown when
absent, so the code works with configs written before they exist in the schema.
"""

from __future__ import annotations

from typing import Any

from hinqs.nqs.sampler import DEFAULT_MAX_BATCH
from hinqs.nqs.teacher import DEFAULT_MAX_DETERMINANTS, DEFAULT_MIN_WEIGHT
from hinqs.nqs.trainer import DEFAULT_BATCH_SIZE, DEFAULT_SMOOTHING

EXTRA_DEFAULTS: dict[str, Any] = {
    "max_teacher_determinants": DEFAULT_MAX_DETERMINANTS,
    "teacher_min_weight": DEFAULT_MIN_WEIGHT,
    "batch_size": DEFAULT_BATCH_SIZE,
    "smoothing": DEFAULT_SMOOTHING,
    "max_batch": DEFAULT_MAX_BATCH,
}

BASE_DEFAULTS: dict[str, Any] = {
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 4,
    "samples": 100000,
    "epochs": 100,
    "learning_rate": 1e-3,
    "temperature": 1.0,
    "device": "auto",
}


def nqs_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``nqs`` section with every key the NQS code reads filled in."""
    return {**BASE_DEFAULTS, **EXTRA_DEFAULTS, **config.get("nqs", {})}
