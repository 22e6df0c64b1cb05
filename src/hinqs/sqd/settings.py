"""Settings of one diagonalisation step, as plain frozen dataclasses.

They mirror the ``seed``, ``sqd`` and ``parallel`` sections of the run config (see
``schemas/config.schema.yaml``, which owns every default: these classes have none, and
:class:`hinqs.loop.settings.RunSettings` builds them). They are picklable and hold only plain
Python values: a :class:`SolverSettings` travels with every batch task to worker processes
and MPI ranks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hinqs.errors import InputError
from hinqs.sqd.registry import DEVICES, EXECUTORS, SOLVERS, TORCH_CPU


@dataclass(frozen=True)
class SolverSettings:
    """How one batch is diagonalised; all of it enters the batch fingerprint.

    ``shift`` is the level shift of PySCF's ``fix_spin_`` penalty, used only when
    ``spin_sq`` is set (qiskit-addon-sqd's default, 0.1). ``device`` is where the ``direct``
    solver applies H (:data:`hinqs.sqd.registry.DEVICES`, or ``cuda:N``, or the internal
    :data:`hinqs.sqd.registry.TORCH_CPU`); the other solvers run on the host and accept only
    ``cpu`` and ``auto``.
    """

    solver: str
    max_cycle: int
    conv_tol: float
    spin_sq: float | None
    shift: float
    warm_start: bool
    device: str
    spin_symmetry: bool = True  # solve C = C^T where both spins share their strings (hinqs.sqd.solvers)

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise InputError(f"unknown solver {self.solver!r} (choose from {', '.join(SOLVERS)})")
        if self.device not in (*DEVICES, TORCH_CPU) and not self.device.startswith("cuda:"):
            raise InputError(f"unknown sqd.device {self.device!r} (choose from {', '.join(DEVICES)})")
        if self.solver != "direct" and self.device not in ("cpu", "auto"):
            raise InputError(
                f"sqd.device {self.device!r} needs sqd.solver: direct (the {self.solver} solver runs on the host)"
            )
        if self.max_cycle < 1:
            raise InputError("max_cycle must be at least 1")
        if not self.conv_tol > 0:
            raise InputError("conv_tol must be positive")
        if self.spin_sq is not None and self.spin_sq < 0:
            raise InputError("spin_sq must be non-negative")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (also what the fingerprint hashes)."""
        return asdict(self)


@dataclass(frozen=True)
class ParallelSettings:
    """Where and how the batches run.

    ``kill_grace`` is how long past ``batch_timeout`` the parent waits for the worker's own
    timer to stop a batch before it kills the worker process (``process`` executor only):
    the in-worker timer can only fire between Python statements, and one call into PySCF's
    C code can take a while at large subspaces.
    """

    executor: str
    workers: int
    threads_per_worker: int
    batch_timeout: float | None
    retries: int
    kill_grace: float

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise InputError(f"unknown executor {self.executor!r} (choose from {', '.join(EXECUTORS)})")
        if self.workers < 1:
            raise InputError("workers must be at least 1")
        if self.threads_per_worker < 1:
            raise InputError("threads_per_worker must be at least 1")
        if self.batch_timeout is not None and not self.batch_timeout > 0:
            raise InputError("batch_timeout must be positive (or null for no limit)")
        if self.retries < 0:
            raise InputError("retries must be non-negative")
        if not self.kill_grace > 0:
            raise InputError("kill_grace must be positive")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class SQDSettings:
    """Everything one diagonalisation step needs besides its inputs.

    ``max_dimension`` caps each batch's product space (``None``: derived from the config,
    ``memory_mb`` or a fixed figure, see :mod:`hinqs.sqd.dimension`; 0: no cap).
    ``memory_mb`` is the memory the step may use (``None``: SLURM's grant, else the node's
    available memory), against which a batch is checked before it runs; a batch that does
    not fit is refused, or cut to what fits when ``shrink_to_memory`` is set (the only
    machine-dependent cut; result.json records it). None of these enters the batch
    fingerprint directly: a cap changes the batch's strings, and those are fingerprinted.
    """

    seed: int
    iteration: int
    n_batches: int
    samples_per_batch: int
    max_dimension: int | None
    memory_mb: float | None
    shrink_to_memory: bool
    solver: SolverSettings
    parallel: ParallelSettings

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise InputError("seed must be non-negative")
        if self.iteration < 0:
            raise InputError("iteration must be non-negative")
        if self.n_batches < 1:
            raise InputError("n_batches must be at least 1")
        if self.samples_per_batch < 1:
            raise InputError("samples_per_batch must be at least 1")
        if self.max_dimension is not None and self.max_dimension < 0:
            raise InputError("max_dimension must be non-negative (0 turns the cap off, null derives it)")
        if self.memory_mb is not None and not self.memory_mb > 0:
            raise InputError("memory_mb must be positive (or null to detect it)")
        if self.parallel.executor == "distributed" and self.solver.solver != "direct":
            raise InputError(
                f"parallel.executor: distributed spreads the direct solver's products over MPI ranks; "
                f"sqd.solver is {self.solver.solver!r} (set sqd.solver: direct)"
            )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, recorded in result.json (nested sections as dicts)."""
        return asdict(self)
