"""Running the real Snakemake workflow on small configs, and comparing what runs produced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
BIN = Path(sys.executable).parent

# Two points of a LiH scan (225 determinants each): a few seconds per step on 2 cores.
SCAN_CONFIG = {
    "seed": 11,
    "systems": [
        {"name": "lih_r1", "geometry": "Li 0 0 0; H 0 0 1.5949", "basis": "sto-3g", "coordinate": 1.5949},
        {"name": "lih_r2", "geometry": "Li 0 0 0; H 0 0 2.2", "basis": "sto-3g", "coordinate": 2.2},
    ],
    "nqs": {"samples": 2000, "epochs": 20, "device": "cpu"},
    "sqd": {"n_batches": 2, "samples_per_batch": 40},
    "parallel": {"executor": "process", "workers": 2, "threads_per_worker": 1},
    "iterations": {"max": 2, "tol": 1.0e-7, "window": 1},
    # No PT2: its batches span the whole space at once, where E_PT2 = 0 would stop the loop
    # accurate at iteration 1; these tests want iterations (resume, executors, the scan).
    "pt2": {"max_dimension": 0},
}


def one_system(config: dict, **changes) -> dict:
    """The config with only its first system, and top-level sections updated."""
    out = json.loads(json.dumps(config))
    out["systems"] = out["systems"][:1]
    for section, values in changes.items():
        out[section] = {**out.get(section, {}), **values} if isinstance(values, dict) else values
    return out


def make_workdir(path: Path, config: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def workflow_env() -> dict[str, str]:
    """The venv's bin first on PATH, so rules find the `hinqs` under test."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def snakemake_args(*extra: str) -> list[str]:
    return [str(BIN / "snakemake"), "--snakefile", str(SNAKEFILE), "--configfile", "config.yaml", *extra]


def snakemake_from_repo_root(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`snakemake ...` typed in the repository root with a user's arguments, as the README says."""
    return subprocess.run(
        [str(BIN / "snakemake"), *args], cwd=REPO, env=workflow_env(), capture_output=True, text=True, timeout=timeout
    )


def run_user_config(tmp: Path, filename: str, config: dict, *extra: str) -> Path:
    """Write ``config`` as the user's ``tmp/filename`` and run `snakemake --cores 2 --configfile
    it` from the repository root, results in ``tmp/results`` (returned); fails the test on error."""
    config_file = tmp / filename
    config_file.write_text(yaml.safe_dump(config))
    results = tmp / "results"
    proc = snakemake_from_repo_root(
        "--cores", "2", "--configfile", str(config_file), "--config", f"results_dir={results}", *extra
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results


def run_snakemake(workdir: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_args(*extra), cwd=workdir, env=workflow_env(), capture_output=True, text=True, timeout=timeout
    )


def summary(workdir: Path, system: str) -> dict:
    return json.loads((workdir / "results" / system / "summary.json").read_text())


def energies(workdir: Path, system: str) -> list[float]:
    return [r["energy"] for r in summary(workdir, system)["per_iteration"]]


def png_image(path: Path):
    """The pixels of a PNG (rows x columns x RGBA, floats in [0, 1]), after checking its signature."""
    from matplotlib import image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return image.imread(path)


def has_colour(pixels, hex_colour: str, at_least: int = 50) -> bool:
    """Whether at least ``at_least`` pixels carry ``hex_colour`` (a line of that colour was drawn)."""
    import numpy as np

    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int(np.sum(np.all(np.abs(pixels[..., :3] - rgb) < 0.02, axis=-1))) >= at_least


def differences(a: object, b: object, path: str = "") -> list[str]:
    """Where two JSON-like values differ, as paths with both values (an assertion's message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def comparable(data: dict) -> dict:
    """A summary without what legitimately differs between runs (timings)."""
    data = json.loads(json.dumps(data))
    data.pop("seconds_per_stage", None)
    for record in data["per_iteration"]:
        record.pop("seconds", None)
    return data
