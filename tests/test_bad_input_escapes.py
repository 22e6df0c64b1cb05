"""Bad input that used to escape as a traceback: each case runs the real ``hinqs`` command and must
end with exit code 2, exactly one line on stderr naming the problem, and nothing half-written.

The inputs are real: Hamiltonians, models and an FCIDUMP made by PySCF and by ``hinqs`` itself
(session fixture), then damaged or mixed up the way a user would; full and read-only disks are
real tmpfs mounts (skipped where mounting is not permitted) or a real RLIMIT_FSIZE.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import LIH, write_config

H2 = "H 0 0 0; H 0 0 0.74"


@pytest.fixture(scope="session")
def systems(tmp_path_factory) -> SimpleNamespace:
    """H2 and LiH (STO-3G) prepared and initialised by the real commands, and H2's FCIDUMP from PySCF."""
    from pyscf import gto, scf
    from pyscf.tools import fcidump

    root = tmp_path_factory.mktemp("systems")
    config = write_config(
        root / "config.yaml",
        {
            "systems": [{"name": "h2", "geometry": H2}, {"name": "lih", "geometry": LIH}],
            "nqs": {"d_model": 8, "n_layers": 1, "n_heads": 2, "device": "cpu"},
        },
    )
    expand = write_config(
        root / "expand.yaml",
        {"systems": [{"name": "h2", "geometry": H2}], "subspace": {"expansion": {"strings": 1}}},
    )
    for name in ("h2", "lih"):
        ham, model = root / name / "hamiltonian", root / name / "model.pt"
        for argv in (
            ["prepare", "--config", str(config), "--system", name, "--out", str(ham)],
            ["init-model", "--config", str(config), "--system", name, "--hamiltonian", str(ham), "--out", str(model)],
        ):
            proc = _hinqs(argv)
            assert proc.returncode == 0, proc.stderr
    mol = gto.M(atom=H2, basis="sto-3g", verbose=0)
    fcidump.from_scf(scf.RHF(mol).run(), str(root / "h2.fcidump"))
    samples = root / "h2_samples.npz"  # the H2 Hartree-Fock determinant, as `hinqs sample` writes it
    np.savez(samples, alpha=np.array([1], np.uint64), beta=np.array([1], np.uint64), counts=np.array([5]))
    return SimpleNamespace(root=root, config=config, expand=expand, samples=samples)


@pytest.fixture(scope="session")
def finished(systems) -> Path:
    """A results folder with one finished H2 iteration made by the real commands (diagonalize,
    check, pt2, summarize), as Snakemake lays it out: the files the later commands read."""
    run = systems.root / "run" / "h2"
    shutil.copytree(systems.root / "h2" / "hamiltonian", run / "hamiltonian")
    it = run / "iter_001"
    for argv in (
        ["diagonalize", "--hamiltonian", str(run / "hamiltonian"), "--subspace", str(systems.samples),
         "--out", str(it / "sqd"), "--executor", "sequential", "--quiet"],
        ["check", "--config", str(systems.config), "--iteration", "1", "--result", str(it / "sqd" / "result.json"),
         "--out", str(it / "status.json")],
        ["pt2", "--config", str(systems.config), "--hamiltonian", str(run / "hamiltonian"),
         "--state", str(it / "sqd" / "state.npz"), "--iteration", "1", "--out", str(it / "pt2.json")],
        ["summarize", str(run), "--iterations", "1"],
    ):  # fmt: skip
        proc = _hinqs(argv)
        assert proc.returncode == 0, proc.stderr
    (run / "benchmarks").mkdir()
    (run / "benchmarks" / "diagonalize_001.tsv").write_text("s\th:m:s\tmax_rss\n1.5\t0:00:01\t100.0\n")
    return run


def _hinqs(argv: list[str], preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hinqs", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec,
    )


@dataclass
class Case:
    """One command to run, the output it must not leave half-written, and what was there before."""

    argv: list[str]
    out: Path
    keep: list[str] = field(default_factory=list)  # files in an existing `out` folder that must stay as they were
    preexec: Callable[[], None] | None = None
    absent: list[Path] = field(default_factory=list)  # other outputs that must not be written either


class Env:
    """What a case's set-up gets: its own folder, the shared systems, and tmpfs mounts cleaned up after."""

    def __init__(self, tmp: Path, systems: SimpleNamespace) -> None:
        self.tmp, self.sys, self.mounts = tmp, systems, []

    def mount(self, directory: Path, *options: str) -> Path:
        """A 64 KiB tmpfs at ``directory`` (root only, like the tests' container); skip where not permitted."""
        directory.mkdir(parents=True, exist_ok=True)
        opts = ",".join(["size=64k", *options])
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(directory)], capture_output=True)
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip() or proc.returncode}")
        self.mounts.append(directory)
        return directory

    def config(self, system: dict) -> Path:
        return write_config(self.tmp / "config.yaml", {"systems": [{"name": "x", **system}]})

    def fcidump(self, edit: Callable[[str], str]) -> Path:
        path = self.tmp / "FCIDUMP"
        path.write_text(edit((self.sys.root / "h2.fcidump").read_text()))
        return path

    def prepare(self, system: dict) -> Case:
        out = self.tmp / "out" / "ham"
        return Case(["prepare", "--config", str(self.config(system)), "--out", str(out)], out)

    def prepare_fcidump(self, edit: Callable[[str], str]) -> Case:
        return self.prepare({"fcidump": str(self.fcidump(edit))})

    def ham(self, name: str) -> Path:
        return self.sys.root / name / "hamiltonian"

    def model(self, name: str) -> Path:
        return self.sys.root / name / "model.pt"

    def state(self, strs_a: list[int], strs_b: list[int]) -> Path:
        """A state.npz as `hinqs diagonalize` writes it, over the given strings (equal amplitudes)."""
        path = self.tmp / "state.npz"
        amps = np.full((len(strs_a), len(strs_b)), 1.0 / np.sqrt(len(strs_a) * len(strs_b)))
        np.savez(path, ci_strs_a=np.array(strs_a, np.uint64), ci_strs_b=np.array(strs_b, np.uint64), amplitudes=amps)
        return path

    def train(self, model: Path, teacher: Path) -> Case:
        out = self.tmp / "model_1.pt"
        argv = ["train", "--config", str(self.sys.config), "--model", str(model), "--teacher", str(teacher)]
        return Case([*argv, "--iteration", "1", "--epochs", "1", "--out", str(out)], out)

    def basis(self, ham: Path, *extra: str) -> Case:
        out = self.tmp / "basis.npz"
        argv = ["subspace", "--hamiltonian", str(ham), "--samples", str(self.sys.samples), *extra]
        return Case([*argv, "--config", str(self.sys.expand), "--out", str(out)], out)

    def init_model(self, ham: Path, out: Path, preexec: Callable[[], None] | None = None) -> Case:
        argv = ["init-model", "--config", str(self.sys.config), "--system", "h2", "--hamiltonian", str(ham)]
        return Case([*argv, "--out", str(out)], out, preexec=preexec)

    def copy_ham(self, name: str) -> Path:
        return Path(shutil.copytree(self.ham(name), self.tmp / "ham"))

    def pt2(self, state: Path) -> Case:
        out = self.tmp / "pt2.json"
        argv = ["pt2", "--config", str(self.sys.config), "--hamiltonian", str(self.ham("h2")), "--state", str(state)]
        return Case([*argv, "--iteration", "1", "--out", str(out)], out)

    def check(self, result: Path, previous: Path | None = None, iteration: int = 1) -> Case:
        out = self.tmp / "status.json"
        argv = ["check", "--config", str(self.sys.config), "--iteration", str(iteration), "--result", str(result)]
        argv += ["--previous-status", str(previous)] if previous else []
        return Case([*argv, "--out", str(out)], out)

    def run_copy(self, edit: Callable[[Path], object]) -> Path:
        """A copy of the finished H2 folder without its summary, damaged by ``edit(folder)``."""
        run = Path(shutil.copytree(self.sys.finished, self.tmp / "h2"))
        for name in ("summary.json", "energies.csv", "convergence.png"):
            (run / name).unlink()
        edit(run)
        return run

    def summarize(self, edit: Callable[[Path], object], *extra: str) -> Case:
        run = self.run_copy(edit)
        absent = [run / "energies.csv", run / "convergence.png"]
        return Case(["summarize", str(run), "--iterations", "1", *extra], run / "summary.json", absent=absent)

    def result_lines(self, text: str) -> Case:
        """`hinqs summarize FOLDER` (the result lines of a finished run) with summary.json = text."""
        run = self.run_copy(lambda r: (r / "summary.json").write_text(text))
        return Case(["summarize", str(run)], run / "nothing-written")

    def scan(self, *summaries: Path) -> Case:
        out = self.tmp / "scan.csv"
        argv = ["scan", "--config", str(self.sys.config), *map(str, summaries), "--csv", str(out)]
        return Case([*argv, "--png", str(self.tmp / "scan.png")], out, absent=[self.tmp / "scan.png"])

    def diagonalize(self, subspace: Path, *extra: str) -> Case:
        out = self.tmp / "sqd"
        argv = ["diagonalize", "--hamiltonian", str(self.ham("h2")), "--subspace", str(subspace), "--out", str(out)]
        return Case([*argv, "--executor", "sequential", *extra], out)

    def file(self, name: str, text: str | bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    def garbage_npz(self, name: str, **arrays: object) -> Path:
        path = self.tmp / name
        np.savez(path, **arrays)
        return path


def _header(key: str, value: int) -> Callable[[str], str]:
    return lambda text: re.sub(rf"{key}=\s*\d+", f"{key}={value}", text, count=1)


def _fill(directory: Path, leave: int) -> None:
    """Fill a tmpfs until it is full, then free ``leave`` bytes: a disk that fills up mid-write."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(filler, max(filler.stat().st_size - leave, 0))


def disk_full_prepare(env: Env) -> Case:
    """prepare writes hcore.npy, then eri.npy fails: the previous folder stays, no temporary folder."""
    disk = env.mount(env.tmp / "disk")
    out = disk / "ham"
    out.mkdir()
    (out / "previous.txt").write_text("an earlier, complete result")
    _fill(disk, 4096)
    return Case(["prepare", "--config", str(env.config({"geometry": H2})), "--out", str(out)], out, ["previous.txt"])


def disk_full_checkpoint(env: Env) -> Case:
    """init-model on a full disk: model.pt from before stays byte for byte."""
    disk = env.mount(env.tmp / "disk")
    (disk / "model.pt").write_bytes(b"previous checkpoint")
    _fill(disk, 0)
    return env.init_model(env.ham("h2"), disk / "model.pt")


def read_only_checkpoint(env: Env) -> Case:
    return env.init_model(env.ham("h2"), env.mount(env.tmp / "ro", "ro") / "model.pt")


def file_size_limit(env: Env) -> Case:
    """RLIMIT_FSIZE makes the write itself fail with EFBIG (Python ignores SIGXFSZ)."""
    out = env.tmp / "model.pt"
    out.write_bytes(b"previous checkpoint")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    return env.init_model(env.ham("h2"), out, preexec=limit)


def output_under_a_file(env: Env) -> Case:
    (env.tmp / "results").write_text("a file where a folder should be")
    return env.init_model(env.ham("h2"), env.tmp / "results" / "iter_000" / "model.pt")


def mismatched_weights(env: Env) -> Case:
    """A checkpoint whose model_config says LiH but whose weights are H2's."""
    import torch

    data = torch.load(env.model("h2"), weights_only=True)
    data["model_config"] = torch.load(env.model("lih"), weights_only=True)["model_config"]
    torch.save(data, env.tmp / "model.pt")
    out = env.tmp / "samples.npz"
    argv = ["sample", "--config", str(env.sys.config), "--model", str(env.tmp / "model.pt"), "--iteration", "1"]
    return Case([*argv, "--samples", "10", "--out", str(out)], out)


def model_of_another_system(env: Env) -> Case:
    """`hinqs sample --hamiltonian` of H2 with LiH's model: refused before drawing anything."""
    out = env.tmp / "samples.npz"
    argv = ["sample", "--config", str(env.sys.config), "--model", str(env.model("lih")), "--iteration", "1"]
    return Case([*argv, "--hamiltonian", str(env.ham("h2")), "--samples", "10", "--out", str(out)], out)


def truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def altered_eri(env: Env) -> Case:
    ham = env.copy_ham("h2")
    eri = np.load(ham / "eri.npy")
    eri[0, 0, 0, 0] += 1e-3
    np.save(ham / "eri.npy", eri)
    return env.basis(ham)


def meta_with(env: Env, **changes: object) -> Path:
    import json

    ham = env.copy_ham("h2")
    meta = json.loads((ham / "meta.json").read_text())
    (ham / "meta.json").write_text(json.dumps({**meta, **changes}))
    return ham


LIH_STRINGS = [0b000011, 0b000101, 0b001001]  # 2 electrons in 6 orbitals: a state of LiH/STO-3G (4e, 6o)

CASES: dict[str, tuple[Callable[[Env], Case], str]] = {
    # geometry
    "coincident atoms": (lambda e: e.prepare({"geometry": "H 0 0 0; H 0 0 0"}), "atoms 1 (H) and 2 (H) are 0 Angstrom"),
    "nearly coincident atoms": (
        lambda e: e.prepare({"geometry": "H 0 0 0; H 0 0 0.74; H 0 0.05 0.74; H 0 0 3"}),
        "atoms 2 (H) and 3 (H) are 0.05 Angstrom apart (closer than 0.1)",
    ),
    "nan coordinate": (lambda e: e.prepare({"geometry": "H 0 0 nan; H 0 0 0.74"}), "atom 1 (H) has a non-finite"),
    "inf coordinate": (lambda e: e.prepare({"geometry": "H 0 0 0; H 0 0 1e400"}), "atom 2 (H) has a non-finite"),
    "empty geometry": (lambda e: e.prepare({"geometry": " ; "}), "the geometry has no atoms"),
    "missing geometry file": (lambda e: e.prepare({"geometry": "geometries/h2.xyz"}), "geometry file not found"),
    "unknown element": (lambda e: e.prepare({"geometry": "Qq 0 0 0; H 0 0 1"}), "unknown element 'Qq'"),
    "fifth field on an atom line": (
        lambda e: e.prepare({"geometry": "H 0 0 0; H 0 0 0.74 5"}),
        "atom 2 ('H 0 0 0.74 5') has 5 fields",
    ),
    "coordinate typo": (lambda e: e.prepare({"geometry": "H 0 0 0; H 0 0 0.74x"}), "atom 2: '0.74x' is not a number"),
    "more orbitals than CI strings hold": (
        lambda e: e.prepare({"geometry": H2, "basis": "aug-cc-pvqz"}),
        "92 active orbitals exceed the 63",
    ),
    # FCIDUMP
    "fcidump NORB above its integrals": (
        lambda e: e.prepare_fcidump(_header("NORB", 4)),
        "NORB=4 but no integral mentions orbital(s) 3, 4",
    ),
    "fcidump index beyond NORB": (lambda e: e.prepare_fcidump(_header("NORB", 1)), "refers to orbital 2 but NORB=1"),
    "fcidump NELEC above 2 NORB": (lambda e: e.prepare_fcidump(_header("NELEC", 5)), "NELEC=5 electrons do not fit"),
    "fcidump MS2 of the wrong parity": (lambda e: e.prepare_fcidump(_header("MS2", 1)), "MS2=1 is impossible"),
    "fcidump blank line mid-file": (
        lambda e: e.prepare_fcidump(lambda t: t.replace("\n", "\n\n", 6).replace("\n\n", "\n", 5)),
        "is blank but integrals follow",
    ),
    "fcidump nan integral": (
        lambda e: e.prepare_fcidump(lambda t: re.sub(r"(?m)^\s*\S+(\s+1\s+1\s+1\s+1)$", r" nan\1", t)),
        "non-finite integral",
    ),
    "fcidump 70 orbitals": (
        lambda e: e.prepare_fcidump(
            lambda t: _header("NORB", 70)(t) + "".join(f" 0.5 {i} {i} {i} {i}\n" for i in range(3, 71))
        ),
        "70 active orbitals exceed the 63",
    ),
    # files handed from step to step
    "teacher of another system (train)": (
        lambda e: e.train(e.model("h2"), e.state(LIH_STRINGS, LIH_STRINGS)),
        "teacher does not match the model",
    ),
    "teacher with wrong electron counts (train)": (
        lambda e: e.train(e.model("h2"), e.state([0b11], [0b01])),
        "ci_strs_a has strings with 2 electrons, but the model has 1",
    ),
    "truncated teacher (train)": (
        lambda e: e.train(e.model("h2"), truncated(e.state([1, 2], [1, 2]))),
        "not a readable .npz file",
    ),
    "teacher of another system (subspace)": (
        lambda e: e.basis(e.ham("h2"), "--teacher", str(e.state(LIH_STRINGS, LIH_STRINGS))),
        "ci_strs_a occupies 4 orbitals, but the run's Hamiltonian has norb=2",
    ),
    "truncated teacher (subspace)": (
        lambda e: e.basis(e.ham("h2"), "--teacher", str(truncated(e.state([1, 2], [1, 2])))),
        "not a readable .npz file",
    ),
    "previous subspace of another system": (
        lambda e: e.basis(e.ham("h2"), "--previous-subspace", str(_lih_basis(e))),
        "the previous subspace does not match the Hamiltonian",
    ),
    "Hamiltonian of another system (init-model)": (
        lambda e: e.init_model(e.ham("lih"), e.tmp / "model.pt"),
        "was prepared for system 'lih', not 'h2'",
    ),
    "negative iteration (pt2)": (
        lambda e: _with_iteration(e.pt2(e.sys.finished / "iter_001" / "sqd" / "state.npz"), -1),
        "--iteration must be at least 1",
    ),
    "negative iteration (natural-orbitals)": (
        lambda e: Case(
            [
                "natural-orbitals",
                "--hamiltonian",
                str(e.ham("h2")),
                "--state",
                str(e.sys.finished / "iter_001" / "sqd" / "state.npz"),
                "--iteration",
                "-2",
                "--out",
                str(e.tmp / "nat"),
            ],
            e.tmp / "nat",
        ),
        "--iteration must be at least 1",
    ),
    "fcidump truncated after its two-electron integrals": (
        lambda e: e.prepare_fcidump(lambda t: "\n".join(t.splitlines()[:-4]) + "\n"),
        "the file is truncated or incomplete",
    ),
    "checkpoint weights that do not fit its config": (mismatched_weights, "the weights do not fit its model_config: "),
    "model of another system (sample)": (model_of_another_system, "the model was made for norb="),
    # Hamiltonian folders
    "truncated eri.npy": (
        lambda e: (truncated(e.copy_ham("h2") / "eri.npy"), e.basis(e.tmp / "ham"))[1],
        "eri.npy is truncated or not a .npy array",
    ),
    "eri.npy altered after prepare": (altered_eri, "does not match its checksum"),
    "meta.json with 70 orbitals": (
        lambda e: e.init_model(meta_with(e, norb=70), e.tmp / "model.pt"),
        "70 active orbitals exceed the 63",
    ),
    # writes that fail
    "disk full while writing the Hamiltonian": (disk_full_prepare, "No space left on device (ENOSPC)"),
    "disk full while writing a checkpoint": (disk_full_checkpoint, "No space left on device (ENOSPC)"),
    "read-only results folder": (read_only_checkpoint, "Read-only file system (EROFS)"),
    "file size limit": (file_size_limit, "File too large (EFBIG)"),
    "results folder is a file": (output_under_a_file, "cannot write"),
    # hinqs pt2
    "state of another system (pt2)": (
        lambda e: e.pt2(e.state(LIH_STRINGS, LIH_STRINGS)),
        "ci_strs_a occupies 4 orbitals, but the run's Hamiltonian has norb=2",
    ),
    "state with wrong electron counts (pt2)": (
        lambda e: e.pt2(e.state([0b11], [0b01])),
        "ci_strs_a has strings with 2 electrons",
    ),
    "truncated state (pt2)": (lambda e: e.pt2(truncated(e.state([1, 2], [1, 2]))), "not a readable .npz file"),
    "state with NaN amplitudes (pt2)": (
        lambda e: e.pt2(
            e.garbage_npz(
                "nan.npz",
                ci_strs_a=np.array([1], np.uint64),
                ci_strs_b=np.array([1], np.uint64),
                amplitudes=np.array([[np.nan]]),
            )
        ),
        "the amplitudes are not finite",
    ),
    "json as a state (pt2)": (lambda e: e.pt2(e.file("state.npz", '{"energy": 1}')), "not a readable .npz file"),
    # hinqs check
    "garbage result (check)": (
        lambda e: e.check(e.file("result.json", '{"energy": ')),
        "cannot read the merged energy",
    ),
    "result with a NaN energy (check)": (
        lambda e: e.check(e.file("result.json", '{"energy": NaN, "best_batch": 0}')),
        "the merged energy is nan, not a finite number",
    ),
    "previous status that is a list (check)": (
        lambda e: e.check(e.sys.finished / "iter_001" / "sqd" / "result.json", e.file("status.json", "[1, 2]"), 2),
        "iteration status is not a JSON object",
    ),
    "previous status with text energies (check)": (
        lambda e: e.check(e.sys.finished / "iter_001" / "sqd" / "result.json", _status_with(e, energies=["x"]), 2),
        "not a valid iteration status (energies must be a list of finite numbers)",
    ),
    "iteration 0 (check)": (
        lambda e: e.check(e.sys.finished / "iter_001" / "sqd" / "result.json", iteration=0),
        "--iteration must be at least 1",
    ),
    # hinqs summarize (a system's summary, and the result lines of a finished run)
    "garbage sample statistics (summarize)": (
        lambda e: e.summarize(lambda r: (r / "iter_001" / "sample_stats.json").write_text('{"n_unique": 3,')),
        "sample statistics is not valid JSON",
    ),
    "text in a PT2 record (summarize)": (
        lambda e: e.summarize(lambda r: _edit_json(r / "iter_001" / "pt2.json", e_pt2="-0.01")),
        "PT2 record has e_pt2 = '-0.01', not a finite number",
    ),
    "garbage status (summarize)": (
        lambda e: e.summarize(lambda r: (r / "iter_001" / "status.json").write_text("\x00\x01")),
        "iteration status is not valid JSON",
    ),
    "garbage benchmark TSV (summarize)": (
        lambda e: e.summarize(lambda r: (r / "benchmarks" / "diagonalize_001.tsv").write_text("s\tmax_rss\nfast\t1\n")),
        "not a Snakemake benchmark file",
    ),
    "benchmark TSV without its seconds column (summarize)": (
        lambda e: e.summarize(lambda r: (r / "benchmarks" / "diagonalize_001.tsv").write_text("<html>404</html>\n")),
        "not a Snakemake benchmark file",
    ),
    "garbage result (summarize)": (
        lambda e: e.summarize(lambda r: (r / "iter_001" / "sqd" / "result.json").write_text("{")),
        "cannot read the merged energy",
    ),
    "meta.json without norb (summarize)": (
        lambda e: e.summarize(lambda r: (r / "hamiltonian" / "meta.json").write_text('{"ecore": 0.7}')),
        "meta.json lacks a valid 'norb' and 'nelec'",
    ),
    "iterations 0 (summarize)": (lambda e: e.summarize(lambda r: None, "--iterations", "0"), "--iterations must be"),
    "garbage summary (summarize a finished run)": (lambda e: e.result_lines("{oops"), "summary is not valid JSON"),
    "summary of something else (summarize a finished run)": (
        lambda e: e.result_lines('{"system": "h2", "best_energy": "low"}'),
        "not a hinqs summary (missing or invalid: best_energy, references",
    ),
    # hinqs scan
    "garbage summary (scan)": (
        lambda e: e.scan(e.sys.finished / "summary.json", e.file("summary.json", "[]")),
        "summary is not a JSON object",
    ),
    "one summary for two systems (scan)": (
        lambda e: e.scan(e.sys.finished / "summary.json"),
        "1 summaries for 2 systems",
    ),
    # hinqs diagonalize
    "subspace of another system (diagonalize)": (
        lambda e: e.diagonalize(_lih_basis(e)),
        "determinants do not fit the Hamiltonian",
    ),
    "truncated subspace (diagonalize)": (
        lambda e: e.diagonalize(truncated(Path(shutil.copy(e.sys.samples, e.tmp / "s.npz")))),
        "not a readable .npz file",
    ),
    "teacher of another system (diagonalize)": (
        lambda e: e.diagonalize(e.sys.samples, "--teacher", str(e.state(LIH_STRINGS, LIH_STRINGS))),
        "ci_strs_a occupies 4 orbitals, but the run's Hamiltonian has norb=2",
    ),
    # checkpoints (sample, train) and the others
    "truncated checkpoint (sample)": (
        lambda e: _sample(e, truncated(Path(shutil.copy(e.model("h2"), e.tmp / "model.pt")))),
        "not a readable model checkpoint",
    ),
    "JSON as a checkpoint (train)": (
        lambda e: e.train(e.file("model.pt", "{}"), e.state([1], [1])),
        "not a readable model checkpoint",
    ),
    "truncated samples (subspace)": (lambda e: _truncated_samples(e), "not a readable .npz file"),
    "iterations 0 (verify)": (
        lambda e: Case(
            [
                "verify",
                "--config",
                str(e.sys.config),
                "--system",
                "h2",
                "--iterations",
                "0",
                "--out",
                str(e.tmp / "verify"),
            ],
            e.tmp / "verify",
        ),
        "--iterations must be at least 1",
    ),
}


def _edit_json(path: Path, **changes: object) -> None:
    import json

    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _status_with(env: Env, **changes: object) -> Path:
    path = shutil.copy(env.sys.finished / "iter_001" / "status.json", env.tmp / "previous_status.json")
    _edit_json(Path(path), **changes)
    return Path(path)


def _truncated_samples(env: Env) -> Case:
    case = env.basis(env.ham("h2"))
    samples = truncated(Path(shutil.copy(env.sys.samples, env.tmp / "samples.npz")))
    case.argv[case.argv.index(str(env.sys.samples))] = str(samples)
    return case


def _sample(env: Env, model: Path) -> Case:
    out = env.tmp / "samples.npz"
    argv = ["sample", "--config", str(env.sys.config), "--model", str(model), "--iteration", "1"]
    return Case([*argv, "--hamiltonian", str(env.ham("h2")), "--samples", "10", "--out", str(out)], out)


def _lih_basis(env: Env) -> Path:
    path = env.tmp / "lih_basis.npz"
    strings = np.array(LIH_STRINGS, np.uint64)
    np.savez(path, alpha=strings, beta=strings, counts=np.ones(len(strings), np.int64))
    return path


def _snapshot(case: Case) -> dict[str, bytes]:
    return {name: (case.out / name).read_bytes() for name in case.keep} if case.out.is_dir() else {}


def _leftovers(root: Path) -> list[Path]:
    """Temporary files or folders of the atomic writers (``.NAME.XXXX.tmp``) anywhere under ``root``."""
    return list(root.rglob(".*.tmp"))


def _with_iteration(case: Case, iteration: int) -> Case:
    """The case's command with its ``--iteration`` value replaced."""
    at = case.argv.index("--iteration") + 1
    case.argv[at] = str(iteration)
    return case


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_nothing_half_written(case, tmp_path, systems, finished):
    make, expected = CASES[case]
    systems.finished = finished
    env = Env(tmp_path, systems)
    try:
        run = make(env)
        before = _snapshot(run)
        previous = run.out.read_bytes() if run.out.is_file() else None
        proc = _hinqs(run.argv, run.preexec)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert expected in lines[0], lines[0]
        assert not _leftovers(tmp_path), _leftovers(tmp_path)
        assert not [p for p in run.absent if p.exists()]
        if previous is not None:
            assert run.out.read_bytes() == previous  # the target is untouched
        elif before:
            assert _snapshot(run) == before and sorted(p.name for p in run.out.iterdir()) == sorted(before)
        else:
            assert not run.out.exists()
    finally:
        for directory in reversed(env.mounts):
            subprocess.run(["umount", str(directory)], check=False)


def test_checkpoint_of_another_system_is_refused(systems):
    """load_checkpoint with the run's norb/nelec (what sample/train pass once they read the Hamiltonian)."""
    from hinqs.errors import InputError
    from hinqs.nqs.checkpoint import load_checkpoint

    assert load_checkpoint(systems.root / "h2" / "model.pt", norb=2, nelec=(1, 1)).config.norb == 2
    with pytest.raises(InputError, match=r"made for norb=6, nelec=\(2, 2\), but the Hamiltonian has norb=2"):
        load_checkpoint(systems.root / "lih" / "model.pt", norb=2, nelec=(1, 1))
