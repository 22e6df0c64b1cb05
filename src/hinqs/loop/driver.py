"""The HI-NQS-SQD loop of one system in one process: the steps called as functions.

The Snakemake rules run each step as its own ``hinqs`` command; this driver calls the very
same step functions (:mod:`hinqs.steps`) one after another, on the same files
(:mod:`hinqs.io.layout`), so both produce the same numbers bit for bit. ``hinqs verify`` runs
a config twice through it and the accuracy benchmarks run many systems with it. It times
each stage itself and keeps one process pool open for all its diagonalisations (the
per-step pool start of the workflow, 1-3 s, is paid once).

    from hinqs.loop.driver import run_loop
    run = run_loop(RunSettings.from_config(load_config("config.yaml")), "n2", "results")
    run.iterations, run.seconds[0]["diagonalize"]
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hinqs.io.layout import RunLayout, SystemLayout
from hinqs.loop.convergence import ITERATION_CEILING, Status
from hinqs.loop.settings import RunSettings, with_overrides
from hinqs.sqd.settings import SQDSettings
from hinqs.threads import torch_threads


@dataclass(frozen=True)
class LoopRun:
    """Where a run's files are, how many iterations it did, and seconds per stage."""

    system: SystemLayout
    iterations: int
    status: Status | None
    seconds: list[dict[str, float]] = field(default_factory=list)

    @property
    def system_dir(self) -> Path:
        return self.system.root


class _Clock:
    """Seconds per stage of the current iteration."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def new_iteration(self) -> None:
        self.rows.append({})

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.rows[-1][name] = time.perf_counter() - start


def _iteration(
    settings: tuple[RunSettings, RunSettings],
    system: SystemLayout,
    ham: Path,
    k: int,
    sqd: SQDSettings,
    executor: Any,
    clock: _Clock,
) -> Status:
    """Sample, grow the subspace, diagonalise, check and (unless stopping) train: iteration ``k``.

    ``settings``: as the config gives them (the check tells a fixed cap from a derived one)
    and resolved for the system."""
    from hinqs.steps.check import check
    from hinqs.steps.diagonalize import diagonalize
    from hinqs.steps.nqs import sample, train
    from hinqs.steps.pt2 import estimate_pt2
    from hinqs.steps.subspace import build_subspace

    config_settings, settings = settings
    here, before = system.iteration(k), system.iteration(k - 1)
    previous = None if k == 1 else before  # iteration 1 has no previous subspace, state or status
    clock.new_iteration()
    with clock.stage("sample"), torch_threads(1):
        known = previous and previous.subspace
        sample(settings.nqs, settings.seed, before.model, k, here.samples, stats=here.sample_stats,
               previous_subspace=known, hamiltonian=ham)  # fmt: skip
    with clock.stage("subspace"):
        teacher = previous and previous.state
        last = previous and previous.status
        build_subspace(settings.subspace, ham, here.samples, here.subspace, previous=known, teacher=teacher,
                       stats=here.subspace_stats, previous_status=last)  # fmt: skip
    with clock.stage("diagonalize"):
        diagonalize(ham, here.subspace, here.sqd, with_overrides(sqd, iteration=k), executor=executor, teacher=teacher)
    with clock.stage("pt2"):
        estimate_pt2(settings.pt2, settings.step_cores(), ham, here.state, here.pt2,
                     seed=settings.seed, iteration=k)  # fmt: skip
    with clock.stage("check"):
        pt2 = here.pt2 if settings.pt2.max_dimension > 0 else None
        status = check(config_settings, k, here.result, here.status, previous_status=last, pt2=pt2, hamiltonian=ham)
    if not status.stop:
        with clock.stage("train"), torch_threads(1):
            train(settings.nqs, before.model, here.state, k, here.model, history=here.train_history,
                  previous_samples=here.samples, hamiltonian=ham, expansion=settings.subspace.expansion)  # fmt: skip
    return status


def run_loop(
    settings: RunSettings,
    system: str,
    results_dir: str | os.PathLike[str],
    *,
    max_iterations: int | None = None,
    sqd_overrides: dict[str, Any] | None = None,
    hamiltonian_dir: str | os.PathLike[str] | None = None,
    keep_pool: bool = True,
) -> LoopRun:
    """Prepare (unless ``hamiltonian_dir`` is given), initialise, iterate until the status says stop.

    ``sqd_overrides`` replace diagonalisation settings (``with_overrides`` keys, e.g.
    ``{"parallel__executor": "sequential"}``): the only thing the two paths of
    ``hinqs verify`` change. With ``keep_pool`` one executor serves every iteration.
    """
    from hinqs.sqd.step import executor_for
    from hinqs.steps.nqs import init_model
    from hinqs.steps.orbitals import natural_hamiltonian
    from hinqs.steps.prepare import prepare

    layout = RunLayout.at(results_dir).system(system)
    ham = Path(hamiltonian_dir) if hamiltonian_dir else layout.hamiltonian
    if hamiltonian_dir is None:
        prepare(settings, system, ham)
    config_settings, settings = settings, settings.for_hamiltonian(ham)
    init_model(settings.nqs, settings.seed, system, ham, layout.iteration(0).model)
    sqd = with_overrides(settings.sqd_step(1), **(sqd_overrides or {}))
    clock, status, k = _Clock(), None, 0
    with contextlib.ExitStack() as stack:
        executor = executor_for(sqd) if keep_pool else None
        if executor is not None and hasattr(executor, "__enter__"):
            stack.enter_context(executor)  # type: ignore[arg-type]
        for k in range(1, (max_iterations or settings.iterations.max or ITERATION_CEILING) + 1):
            status = _iteration((config_settings, settings), layout, ham, k, sqd, executor, clock)
            if status.stop:
                break
            if k == settings.natural_after:  # the workflow's natural_orbitals rule, at the same point
                with clock.stage("natural_orbitals"):
                    natural_hamiltonian(ham, layout.iteration(k).state, layout.natural_hamiltonian, iteration=k)
                ham = layout.natural_hamiltonian
    return LoopRun(layout, k, status, clock.rows)
