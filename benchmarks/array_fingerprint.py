"""sha256 of every array a run wrote, keyed by relative path: proof that a change moved no bit.

Walks a results folder and hashes every array of every ``.npz``/``.npy`` (dtype, shape and
bytes), every tensor of every ``model.pt`` state dict, and the energies in ``result.json``,
``status.json`` and ``summary.json`` (their ``repr``, so floats compare bit for bit).
Every tensor of a checkpoint counts: model weights and the optimiser's moments.

    python benchmarks/array_fingerprint.py results/ -o before.json
    python benchmarks/array_fingerprint.py results/ --compare before.json   # exit 1 on a difference
    python benchmarks/array_fingerprint.py --run default results_tmp -o fp.json   # run, then hash
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

# One BLAS/OpenMP thread: PySCF's threaded reductions change the last bits of the integrals
# from run to run otherwise (set before numpy loads).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import numpy as np  # noqa: E402

ENERGY_FILES = ("result.json", "status.json", "summary.json")


def _sha(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _energies(data: Any, prefix: str = "") -> dict[str, str]:
    """Every float or int reached through a key containing 'energy' (or a list under one)."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if "energ" in str(key).lower() and isinstance(value, (int, float, list)) and not isinstance(value, bool):
                out[name] = repr(value)
            elif isinstance(value, (dict, list)):
                out.update(_energies(value, name))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.update(_energies(value, f"{prefix}[{i}]"))
    return out


def _tensors(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every tensor in a checkpoint (model weights, optimiser moments), keyed by its path."""
    if hasattr(data, "detach"):
        return [(prefix, data)]
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, (list, tuple)) else []
    out = []
    for key, value in items:
        out += _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    return sorted(out, key=lambda kv: kv[0])


def fingerprint(root: str | Path) -> dict[str, str]:
    """``{"<relative path>::<array name>": sha256}`` for every array under ``root``."""
    root = Path(root)
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                for name in sorted(data.files):
                    out[f"{rel}::{name}"] = _sha(data[name])
        elif path.suffix == ".npy":
            out[f"{rel}::"] = _sha(np.load(path, allow_pickle=False))
        elif path.suffix == ".pt":
            import torch

            blob = torch.load(path, map_location="cpu", weights_only=False)
            for name, tensor in _tensors(blob):
                out[f"{rel}::{name}"] = _sha(tensor.detach().cpu().numpy())
        elif path.name in ENERGY_FILES:
            for name, value in _energies(json.loads(path.read_text())).items():
                out[f"{rel}::{name}"] = value
    return out


def compare(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Lines naming every key missing, added or different; empty when identical."""
    lines = [f"missing: {k}" for k in sorted(before.keys() - after.keys())]
    lines += [f"added:   {k}" for k in sorted(after.keys() - before.keys())]
    lines += [f"differs: {k}" for k in sorted(before.keys() & after.keys()) if before[k] != after[k]]
    return lines


# The two runs the domain-folder refactor (issue 15) was checked with.
LIH_CONFIG = {
    "seed": 1234,
    "systems": [{"name": "lih", "geometry": "Li 0 0 0; H 0 0 1.5949", "basis": "6-31g"}],
    "nqs": {"samples": 200, "epochs": 10, "device": "cpu"},
    "sqd": {"solver": "solve_fermion", "n_batches": 2, "samples_per_batch": 300},
    "subspace": {"max_strings": 30, "expansion": {"strings": 6}},
    "parallel": {"executor": "process", "workers": 2, "threads_per_worker": 1},
    "iterations": {"max": 3, "tol": 1.0e-9, "window": 2},
    "references": {"ccsd": False},
}


def run(which: str, results: Path) -> None:
    """Run the default config (``config/config.yaml``) or the LiH config in-process."""
    import yaml

    from hinqs.config import validate_config
    from hinqs.loop.driver import run_loop
    from hinqs.loop.settings import RunSettings

    if which == "default":
        config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    else:
        config = json.loads(json.dumps(LIH_CONFIG))
    settings = RunSettings.from_config(validate_config(config))
    for system in config["systems"]:
        loop = run_loop(settings, system["name"], results)
        from hinqs.cli import main

        main(["summarize", str(loop.system_dir), "--iterations", str(loop.iterations)])
        print(f"{system['name']}: {loop.iterations} iterations", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--compare", type=Path, help="a saved fingerprint: exit 1 unless identical")
    parser.add_argument("--run", choices=["default", "lih"], help="run this config into RESULTS first")
    args = parser.parse_args(argv)
    if args.run:
        run(args.run, args.results)
    prints = fingerprint(args.results)
    if args.output:
        args.output.write_text(json.dumps(prints, indent=1, sort_keys=True))
    print(f"{len(prints)} arrays and energies under {args.results}")
    if args.compare:
        lines = compare(json.loads(args.compare.read_text()), prints)
        print("\n".join(lines) if lines else "identical")
        return 1 if lines else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
