"""Settings of the neural quantum state: the model, its sampler and its training.

The config schema (``schemas/config.schema.yaml``) owns every default: this class has none,
and :meth:`hinqs.loop.settings.RunSettings.from_config` builds it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hinqs.errors import InputError

SAMPLERS = ("trained", "untrained", "uniform", "none")
TARGETS = ("state", "first_order")


WIDE_FROM_NORB = 17  # from this many orbitals on the model is twice as wide


def width_for(norb: int) -> int:
    """``d_model`` sized by the system (``nqs.d_model: null``): 32 up to 16 orbitals, 64 above.

    A longer string and a larger target (the first-order determinants join the state's) need
    a wider network (64 has about 4x the parameters of 32).
    """
    return 32 if norb < WIDE_FROM_NORB else 64


@dataclass(frozen=True)
class NQSSettings:
    """``nqs``: the neural quantum state, its sampler and its training."""

    d_model: int | None  # None: sized by the system (RunSettings.for_system)
    n_layers: int
    n_heads: int
    samples: int | None  # None: derived from the system (RunSettings.for_system)
    epochs: int
    learning_rate: float
    temperature: float
    max_teacher_determinants: int
    teacher_min_weight: float
    batch_size: int
    smoothing: float
    max_batch: int
    device: str
    sampler: str  # trained | untrained | uniform | none (controls)
    target: str  # state | first_order: what the network is trained on
    first_order_determinants: int
    first_order_share: float | None  # None: their natural weight in |Psi + Psi1|^2
    train_tol: float
    check_every: int  # epochs between the KL checks of mini-batch training (0: loss windows)
    eval_determinants: int  # bound on the determinants an evaluation reads

    def __post_init__(self) -> None:
        # The schema checks a config; these checks also cover command-line overrides.
        checks = [
            (self.samples is None or self.samples >= 1, "nqs.samples must be at least 1"),
            (self.temperature > 0, "nqs.temperature must be positive"),
            (self.max_batch >= 4, "nqs.max_batch must be at least 4"),
            (self.epochs >= 0, "nqs.epochs must be non-negative"),
            (self.batch_size >= 0, "nqs.batch_size must be non-negative"),
            (self.max_teacher_determinants >= 1, "nqs.max_teacher_determinants must be at least 1"),
            (0.0 <= self.smoothing < 1.0, "nqs.smoothing must be in [0, 1)"),
            (self.sampler in SAMPLERS, f"nqs.sampler must be one of {', '.join(SAMPLERS)}"),
            (self.target in TARGETS, f"nqs.target must be one of {', '.join(TARGETS)}"),
            (self.first_order_determinants >= 0, "nqs.first_order_determinants must be non-negative"),
            (self.train_tol >= 0, "nqs.train_tol must be non-negative"),
            (self.check_every >= 0, "nqs.check_every must be non-negative"),
            (self.eval_determinants >= 1, "nqs.eval_determinants must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
