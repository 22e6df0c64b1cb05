"""Where a run's files live: the one place that knows the results folder layout.

The Snakemake rules, the in-process driver, the summary, ``hinqs verify`` and the
benchmarks all ask this module for paths instead of spelling them out::

    <results>/.hinqs/config.yaml                      validated config snapshot (rules read it)
    <results>/<system>/hamiltonian/{hcore.npy, eri.npy, meta.json}
    <results>/<system>/hamiltonian_natural/...         the same, in the natural orbitals of a state
    <results>/<system>/iter_000/model.pt              initial model
    <results>/<system>/iter_<k>/samples.npz, sample_stats.json, subspace.npz, subspace_stats.json,
                                sqd/{result.json, state.npz, batches/batch_<i>.{json,npz}}, model.pt, train.json,
                                status.json
    <results>/<system>/{summary.json, energies.csv, convergence.png, logs/, benchmarks/}
    <results>/{scan.csv, scan.png}, <results>/verify/<system>/report.{json,txt}

Iteration folders take an ``int`` (``iter_007``) or, for Snakemake patterns, a wildcard
string such as ``"{k}"`` (``iter_{k}``), so the rules and Python share one spelling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ITERATION_DIGITS = 3


def iteration_name(k: int | str) -> str:
    """Folder name of iteration ``k`` (0 holds the initial model); a string is a wildcard."""
    return f"iter_{k}" if isinstance(k, str) else f"iter_{k:0{ITERATION_DIGITS}d}"


@dataclass(frozen=True)
class SQDFiles:
    """The output folder of one diagonalisation step (``iter_<k>/sqd`` or ``hinqs diagonalize --out``)."""

    root: Path

    @property
    def result(self) -> Path:
        return self.root / "result.json"

    @property
    def state(self) -> Path:
        return self.root / "state.npz"

    @property
    def batches(self) -> Path:
        return self.root / "batches"

    def batch(self, index: int) -> tuple[Path, Path]:
        """The ``.json`` record and ``.npz`` ground state of batch ``index``."""
        stem = self.batches / f"batch_{index:03d}"
        return stem.with_suffix(".json"), stem.with_suffix(".npz")


@dataclass(frozen=True)
class IterationFiles:
    """The files of one iteration folder."""

    root: Path

    @property
    def samples(self) -> Path:
        return self.root / "samples.npz"

    @property
    def sample_stats(self) -> Path:
        return self.root / "sample_stats.json"

    @property
    def subspace(self) -> Path:
        return self.root / "subspace.npz"

    @property
    def subspace_stats(self) -> Path:
        return self.root / "subspace_stats.json"

    @property
    def sqd(self) -> Path:
        return self.root / "sqd"

    @property
    def sqd_files(self) -> SQDFiles:
        return SQDFiles(self.sqd)

    @property
    def result(self) -> Path:
        return self.sqd_files.result

    @property
    def state(self) -> Path:
        return self.sqd_files.state

    @property
    def batches(self) -> Path:
        return self.sqd_files.batches

    @property
    def pt2(self) -> Path:
        return self.root / "pt2.json"

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    @property
    def train_history(self) -> Path:
        return self.root / "train.json"

    @property
    def status(self) -> Path:
        return self.root / "status.json"


@dataclass(frozen=True)
class SystemLayout:
    """The results folder of one system."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def hamiltonian(self) -> Path:
        return self.root / "hamiltonian"

    @property
    def meta(self) -> Path:
        return self.hamiltonian / "meta.json"

    @property
    def natural_hamiltonian(self) -> Path:
        """The integrals in the natural orbitals of an iteration's state (``natural_orbitals.after``)."""
        return self.root / "hamiltonian_natural"

    def hamiltonian_at(self, k: int | str, natural_after: int | None) -> Path:
        """The Hamiltonian folder iteration ``k`` works in: prepare's, or the natural one after
        iteration ``natural_after``."""
        if natural_after is not None and int(k) > natural_after:
            return self.natural_hamiltonian
        return self.hamiltonian

    def iteration(self, k: int | str) -> IterationFiles:
        return IterationFiles(self.root / iteration_name(k))

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def energies_csv(self) -> Path:
        return self.root / "energies.csv"

    @property
    def convergence_png(self) -> Path:
        return self.root / "convergence.png"

    def log(self, stage: str, k: int | str | None = None) -> Path:
        """Log file of a rule (``stage_<k>.log`` for per-iteration stages)."""
        return self.root / "logs" / (f"{stage}.log" if k is None else f"{stage}_{_suffix(k)}.log")

    def benchmark(self, stage: str, k: int | str | None = None) -> Path:
        """Snakemake ``benchmark:`` file of a rule (wall seconds and memory of the step)."""
        return self.root / "benchmarks" / (f"{stage}.tsv" if k is None else f"{stage}_{_suffix(k)}.tsv")


def _suffix(k: int | str) -> str:
    return iteration_name(k).removeprefix("iter_")


@dataclass(frozen=True)
class VerifyFiles:
    """``hinqs verify``'s folder for one system: its two runs, their shared Hamiltonian, the report."""

    root: Path

    def run(self, path: str) -> Path:
        """Results folder of one path (``sequential`` or ``parallel``)."""
        return self.root / path

    def hamiltonian(self, system: str) -> Path:
        return self.root / "hamiltonian" / system

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_txt(self) -> Path:
        return self.root / "report.txt"


@dataclass(frozen=True)
class RunLayout:
    """A results folder holding one sub-folder per system."""

    root: Path

    @classmethod
    def at(cls, results_dir: str | os.PathLike[str]) -> RunLayout:
        return cls(Path(results_dir))

    def system(self, name: str) -> SystemLayout:
        return SystemLayout(self.root / name)

    @property
    def config_snapshot(self) -> Path:
        return self.root / ".hinqs" / "config.yaml"

    @property
    def scan_csv(self) -> Path:
        return self.root / "scan.csv"

    @property
    def scan_png(self) -> Path:
        return self.root / "scan.png"

    @property
    def scan_log(self) -> Path:
        return self.root / "logs" / "scan.log"

    def verify(self, system: str) -> Path:
        """Folder of ``hinqs verify``'s two runs and report for one system (see :class:`VerifyFiles`)."""
        return self.root / "verify" / system
