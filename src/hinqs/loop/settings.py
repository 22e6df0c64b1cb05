"""A run's settings as frozen dataclasses, built from a validated config.

The config schema (``schemas/config.schema.yaml``) owns every default: these classes have
none of their own, so a default can never drift between the schema, the command line and
Python. :meth:`RunSettings.from_config` takes a config validated by
:func:`hinqs.config.validate_config` (defaults filled in); :meth:`RunSettings.defaults`
gives the schema's defaults for a command run without a config. Command-line options
reach a section through :func:`with_overrides`, which ignores options left out (``None``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, TypeVar

from hinqs.chem.settings import ReferenceSettings
from hinqs.errors import InputError
from hinqs.loop.growth import AccuracySettings, BudgetSettings
from hinqs.nqs.settings import NQSSettings
from hinqs.sqd.settings import ParallelSettings, SolverSettings, SQDSettings
from hinqs.subspace.settings import ExpansionSettings, PT2Settings, SubspaceSettings

__all__ = [
    "AccuracySettings",
    "BudgetSettings",
    "ExpansionSettings",
    "IterationSettings",
    "NQSSettings",
    "PT2Settings",
    "ParallelSettings",
    "ReferenceSettings",
    "RunSettings",
    "SQDSection",
    "SQDSettings",
    "SolverSettings",
    "SubspaceSettings",
    "with_overrides",
]

T = TypeVar("T")


def _section(cls: type[T], data: dict[str, Any]) -> T:
    """``cls`` from the keys of a config section that name its fields."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class SQDSection:
    """``sqd``: the batches drawn per iteration and how each is solved."""

    n_batches: int
    samples_per_batch: int | None  # None: derived from the system
    max_dimension: int | None
    memory_mb: float | None
    shrink_to_memory: bool
    solver: SolverSettings


@dataclass(frozen=True)
class IterationSettings:
    """``iterations``: when the loop stops."""

    max: int | None  # None: derived (hinqs.loop.convergence.iteration_limit)
    tol: float
    window: int


@dataclass(frozen=True)
class RunSettings:
    """Every section of a validated run config."""

    seed: int
    results_dir: str
    systems: tuple[dict[str, Any], ...]
    references: ReferenceSettings
    nqs: NQSSettings
    sqd: SQDSection
    parallel: ParallelSettings
    mpi_launcher: str
    subspace: SubspaceSettings
    pt2: PT2Settings
    iterations: IterationSettings
    accuracy: AccuracySettings
    natural_after: int | None = None  # natural_orbitals.after (hinqs.steps.orbitals)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RunSettings:
        """Settings from a validated config (every key present)."""
        parallel = dict(config["parallel"])
        subspace = dict(config["subspace"])
        return cls(
            seed=int(config["seed"]),
            results_dir=str(config["results_dir"]),
            systems=tuple(config["systems"]),
            references=_section(ReferenceSettings, config["references"]),
            nqs=_section(NQSSettings, config["nqs"]),
            sqd=_section(SQDSection, {**config["sqd"], "solver": _section(SolverSettings, config["sqd"])}),
            parallel=_section(ParallelSettings, parallel),
            mpi_launcher=str(parallel["mpi_launcher"]),
            subspace=SubspaceSettings(
                subspace["max_strings"], subspace["max_size"], _section(ExpansionSettings, subspace["expansion"])
            ),
            pt2=_section(PT2Settings, config["pt2"]),
            iterations=_section(IterationSettings, config["iterations"]),
            accuracy=AccuracySettings(
                config["accuracy"]["grow"],
                float(config["accuracy"]["target_mha"]),
                float(config["accuracy"]["growth_factor"]),
                _section(BudgetSettings, config["accuracy"]["budget"]),
            ),
            natural_after=config["natural_orbitals"]["after"],
        )

    @classmethod
    def defaults(cls) -> RunSettings:
        """The schema's defaults (no systems): for commands run without a config."""
        from hinqs.config import schema_defaults

        return cls.from_config({**schema_defaults(), "systems": []})

    def for_system(self, norb: int, nelec: tuple[int, int]) -> RunSettings:
        """These settings with every ``None`` (``null`` in the config) replaced by the value
        derived from the active space (:func:`hinqs.loop.defaults.derive`) and the string cap (the
        config's, or the derived one); explicit values stay."""
        from hinqs.loop.defaults import derive

        sub, exp = self.subspace, self.subspace.expansion
        d = derive(norb, nelec, sub.max_strings)  # an explicit cap scales what is derived from it
        per_batch = d.samples_per_batch
        if self.accuracy.grows(sub.max_strings is not None) and d.max_strings > 0:
            # a derived cap may grow (hinqs.loop.growth): one batch must hold the grown subspace whole
            per_batch = max(per_batch, self.growth_determinants() or 0)
        return replace(
            self,
            parallel=self._cores_on_one_batch(),
            nqs=replace(
                self.nqs, samples=_given(self.nqs.samples, d.samples), d_model=_given(self.nqs.d_model, d.d_model)
            ),
            sqd=replace(self.sqd, samples_per_batch=_given(self.sqd.samples_per_batch, per_batch)),
            subspace=replace(
                sub,
                max_strings=_given(sub.max_strings, d.max_strings),
                expansion=replace(
                    exp,
                    strings=_given(exp.strings, d.expansion_strings),
                    top_strings=_given(exp.top_strings, d.expansion_width),
                    partner_strings=_given(exp.partner_strings, d.expansion_width),
                ),
            ),
        )

    def _cores_on_one_batch(self) -> ParallelSettings:
        """The parallel layout of a step that solves one batch (``sqd.samples_per_batch`` null: the
        whole subspace): one worker on every core the step holds, instead of one worker per
        core with all but one idle. Only for the ``direct`` solver, whose bits do not depend on
        its thread count (each output row is one thread's; BLAS pinned to one thread), so the
        same config gives the same numbers; the step's cores, and so its scheduler request,
        are unchanged."""
        par = self.parallel
        one_batch = self.sqd.samples_per_batch is None
        if not one_batch or self.sqd.solver.solver != "direct" or par.executor not in ("process", "sequential"):
            return par
        return replace(par, workers=1, threads_per_worker=self.step_cores())

    def step_cores(self) -> int:
        """Cores the diagonalize step occupies: the PT2 step, which follows it, uses as many."""
        par = self.parallel
        return step_cores(par.executor, par.workers, par.threads_per_worker)

    def batch_cap(self) -> int | None:
        """The largest batch (determinants) the diagonalisation takes whole (None: no cap)."""
        from hinqs.sqd.dimension import resolve_max_dimension

        solver, par = self.sqd.solver.solver, self.parallel
        return resolve_max_dimension(self.sqd.max_dimension, solver, self.sqd.memory_mb, par.workers, par.executor)

    def growth_determinants(self) -> int | None:
        """The most determinants a grown subspace may span: the budget's, within the batch cap."""
        given = [d for d in (self.accuracy.budget.determinants, self.batch_cap()) if d]
        return min(given) if given else None

    def for_hamiltonian(self, hamiltonian: str | os.PathLike[str]) -> RunSettings:
        """:meth:`for_system` with norb and nelec from a Hamiltonian folder's meta.json."""
        from hinqs.io.hamiltonian import active_shape, read_meta

        return self.for_system(*active_shape(read_meta(hamiltonian), hamiltonian))

    def sqd_step(self, iteration: int) -> SQDSettings:
        """The settings of iteration ``iteration``'s diagonalisation step (after :meth:`for_system`)."""
        if self.sqd.samples_per_batch is None:
            raise InputError("sqd.samples_per_batch is null: it is derived from the system (give --hamiltonian)")
        return SQDSettings(
            seed=self.seed,
            iteration=iteration,
            n_batches=self.sqd.n_batches,
            samples_per_batch=self.sqd.samples_per_batch,
            max_dimension=self.sqd.max_dimension,
            memory_mb=self.sqd.memory_mb,
            shrink_to_memory=self.sqd.shrink_to_memory,
            solver=self.sqd.solver,
            parallel=self.parallel,
        )

    def system(self, name: str | None) -> dict[str, Any]:
        """The system called ``name``; with ``None`` the only one (an error if there are several)."""
        if name is None:
            if len(self.systems) != 1:
                raise InputError("the config has several systems: choose one with --system NAME")
            return self.systems[0]
        for system in self.systems:
            if system["name"] == name:
                return system
        known = ", ".join(s["name"] for s in self.systems)
        raise InputError(f"no system named {name!r} in the config (known: {known})")


def step_cores(executor: str, workers: int, threads_per_worker: int) -> int:
    """Cores a diagonalize step occupies: workers x threads per worker, one worker's threads for
    the sequential executor (the Snakefile's ``threads:`` and the PT2 step's threads alike)."""
    return int(threads_per_worker) if executor == "sequential" else int(workers) * int(threads_per_worker)


def _given(value: Any, derived: Any) -> Any:
    return derived if value is None else value


def with_overrides(settings: T, **changes: Any) -> T:
    """A copy of a settings dataclass with some fields replaced.

    ``None`` values are ignored (a command-line option left out keeps the config's value);
    ``outer__inner`` reaches a field of a nested dataclass.
    """
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        if value is None:
            continue
        outer, _, inner = key.partition("__")
        if inner:
            nested.setdefault(outer, {})[inner] = value
        else:
            top[outer] = value
    for outer, inner in nested.items():
        child = getattr(settings, outer)
        if not is_dataclass(child):
            raise TypeError(f"{outer} is not a settings section")
        top[outer] = with_overrides(child, **inner)
    return replace(settings, **top)  # type: ignore[type-var]
