"""The whole HI-NQS-SQD loop of one system in one process, step by step.

The Snakemake rules run each step as its own ``hinqs`` command; this module runs the very
same commands (through :func:`hinqs.cli.main`, so the same argument handling and the same
files) one after another in-process. ``hinqs verify`` uses it to run a config twice, and
the accuracy benchmark to run many systems without a scheduler. The file layout is the
workflow's: ``<results>/<system>/{hamiltonian, iter_000, iter_001, ...}``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hinqs.convergence import read_status
from hinqs.errors import StepFailed
from hinqs.workflow_support import iteration_name


@dataclass(frozen=True)
class PipelineRun:
    """Where a run's files are and how many iterations it did."""

    system_dir: Path
    iterations: int


def _step(argv: Sequence[str]) -> None:
    from hinqs.cli import main

    code = main([str(a) for a in argv])
    if code:
        raise StepFailed(f"step 'hinqs {' '.join(str(a) for a in argv)}' exited with {code}")


def run_system(
    config_path: str | os.PathLike[str],
    system: str,
    results_dir: str | os.PathLike[str],
    *,
    max_iterations: int,
    diagonalize_args: Sequence[str] = (),
    hamiltonian_dir: str | os.PathLike[str] | None = None,
) -> PipelineRun:
    """Run prepare (unless ``hamiltonian_dir`` is given), init, then iterations until stop.

    ``diagonalize_args`` are appended to every ``hinqs diagonalize`` call (e.g.
    ``["--executor", "sequential"]``): the only place the two paths of ``verify`` differ.
    """
    cfg = str(config_path)
    sys_dir = Path(results_dir) / system
    ham = Path(hamiltonian_dir) if hamiltonian_dir else sys_dir / "hamiltonian"
    if hamiltonian_dir is None:
        _step(["prepare", cfg, "--system", system, "--out", ham])
    _step(
        [
            "init-model",
            "--config",
            cfg,
            "--system",
            system,
            "--hamiltonian",
            ham,
            "--out",
            sys_dir / "iter_000" / "model.pt",
        ]
    )
    k = 0
    for k in range(1, max_iterations + 1):
        here, before = sys_dir / iteration_name(k), sys_dir / iteration_name(k - 1)
        previous_basis = ["--previous", before / "basis.npz"] if k > 1 else []
        previous_status = ["--previous", before / "status.json"] if k > 1 else []
        known = ["--known", before / "basis.npz"] if k > 1 else []
        teacher = ["--teacher", before / "sqd" / "state.npz"] if k > 1 else []
        _step(
            ["sample", "--config", cfg, "--model", before / "model.pt", "--iteration", k, "--out",
             here / "samples.npz", "--stats", here / "sample_stats.json", *known]
        )  # fmt: skip
        _step(
            [
                "basis",
                "--hamiltonian",
                ham,
                "--samples",
                here / "samples.npz",
                *previous_basis,
                "--config",
                cfg,
                *teacher,
                "--out",
                here / "basis.npz",
            ]
        )
        _step(
            ["diagonalize", "--config", cfg, "--hamiltonian", ham, "--configs", here / "basis.npz",
             "--iteration", k, "--out", here / "sqd", *diagonalize_args]
        )  # fmt: skip
        _step(
            ["check", "--config", cfg, "--iteration", k, "--result", here / "sqd" / "result.json",
             *previous_status, "--out", here / "status.json"]
        )  # fmt: skip
        if read_status(here / "status.json")["stop"]:
            break
        _step(
            ["train", "--config", cfg, "--model", before / "model.pt", "--teacher", here / "sqd" / "state.npz",
             "--previous-samples", here / "samples.npz", "--iteration", k, "--out", here / "model.pt",
             "--history", here / "train.json"]
        )  # fmt: skip
    return PipelineRun(sys_dir, k)
