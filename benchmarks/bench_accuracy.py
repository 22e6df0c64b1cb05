"""Accuracy of the HI-NQS-SQD loop against FCI, and what each of its parts contributes.

For each molecule the whole loop runs in-process (:func:`hinqs.loop.driver.run_loop`, the
same step functions the Snakemake rules' commands call) with a config written to
``OUT_DIR/<variant>/<molecule>.yaml``, once per variant. Every variant starts from a config
holding only ``systems:`` (plus ``parallel.executor: sequential`` and the seed, which do
not change the numbers), so the size-derived defaults of :mod:`hinqs.loop.defaults` apply:

``defaults``      nothing else set: NQS sampling and PT2 expansion both on (the ablation's on/on);
``no_nqs``        NQS off: one sample per iteration from an untrained model (``nqs.samples: 1``,
                  ``nqs.epochs: 0``), expansion on;
``no_expansion``  expansion off (``subspace.expansion.strings: 0``), NQS on; the cap still ranks
                  the sampled strings by PT2 against the teacher;
``neither``       both off: what is left is HF plus one sample per iteration;
``tuned``         the hand-set options of an earlier round (``TUNED``), for comparison.

Columns of the table:

``E``          the best energy of the run (what ``hinqs check`` reports), Ha;
``err``        E - E_FCI in mHa (FCI from the Hamiltonian folder's meta.json);
``it``         iterations run;
``subspace``   the best iteration's best batch: K_alpha x K_beta and its size as a fraction
               of the FCI space;
``sample/subspace/diag/train``  wall seconds summed over iterations per step;
``nqs str``    strings the NQS samples brought into the basis (new at an iteration, found
               in that iteration's samples) that are in the best iteration's subspace, and
``nqs w``      their weight (sum of marginal |c|^2) in the best state: what the network
               found that expansion had not;
``floor``      the lowest energy in the product space of the top-K_alpha / top-K_beta strings of
               the exact FCI vector (:mod:`hinqs.chem.floor`), as an error in mHa.

The Hamiltonians (with FCI) are prepared once into ``OUT_DIR/hams/<molecule>`` and reused;
the FCI vector for the floor is cached as ``OUT_DIR/hams/<molecule>/fci_civec.npz`` and each
floor energy as ``floor_<Ka>x<Kb>.json`` beside it. ``--collect`` builds the table from run
folders already there (e.g. a run stopped at the time limit) instead of running.
C2H4/STO-3G has 9.0 M determinants: its FCI takes minutes and about 2-3 GB.

    python benchmarks/bench_accuracy.py --molecules lih_631g,beh2_sto3g --variants defaults
    python benchmarks/bench_accuracy.py --molecules h2o_631g,c2h4_sto3g --variants defaults,no_nqs,no_expansion
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

MOLECULES: dict[str, dict[str, Any]] = {
    "lih_631g": {"geometry": "Li 0 0 0; H 0 0 1.5949", "basis": "6-31g"},
    "beh2_sto3g": {"geometry": "Be 0 0 0; H 0 0 1.326; H 0 0 -1.326", "basis": "sto-3g"},
    "n2_sto3g": {"geometry": "N 0 0 0; N 0 0 1.0977", "basis": "sto-3g", "frozen_core": 2},
    # O-H 0.9572, HOH 104.52 deg
    "h2o_631g": {"geometry": "O 0 0 0; H 0.7571 0.5861 0; H -0.7571 0.5861 0", "basis": "6-31g"},
    # planar, C=C 1.339 on z, C-H 1.087, HCH 117.4 deg
    "c2h4_sto3g": {
        "geometry": "C 0 0 0.6695; C 0 0 -0.6695; H 0.928704 0 1.234391; H -0.928704 0 1.234391;"
        " H 0.928704 0 -1.234391; H -0.928704 0 -1.234391",
        "basis": "sto-3g",
    },
}

# Every variant starts from this: the seed, the references prepare computes, and the
# sequential executor (the numbers do not depend on the executor; the VM has 2 cores).
BASE: dict[str, Any] = {
    "seed": 1234,
    "references": {"fci_max_determinants": 20_000_000, "ccsd": False},
    "parallel": {"executor": "sequential"},
}

NQS_OFF = {"nqs": {"samples": 1, "epochs": 0}}
EXPANSION_OFF = {"subspace": {"expansion": {"strings": 0}}}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "no_nqs": NQS_OFF,
    "no_expansion": EXPANSION_OFF,
    "neither": {**NQS_OFF, **EXPANSION_OFF},
}

# Hand-set options of the earlier accuracy round (before the size-derived defaults), per molecule.
TUNED_BASE: dict[str, Any] = {
    "nqs": {"samples": 20000, "epochs": 100, "device": "cpu"},
    "sqd": {"solver": "lean", "n_batches": 2, "samples_per_batch": 300},
    "subspace": {"max_strings": 0},
    "iterations": {"max": 10, "tol": 1.0e-6, "window": 2},
}
TUNED: dict[str, dict[str, Any]] = {
    "h2o_631g": {
        "nqs": {"samples": 300},
        "subspace": {"max_size": 600, "expansion": {"strings": 50}},
        "sqd": {"samples_per_batch": 1000, "n_batches": 1},
        "iterations": {"max": 6},
    },
    "c2h4_sto3g": {
        "nqs": {"samples": 200},
        "subspace": {"max_size": 800, "expansion": {"strings": 80}},
        "sqd": {"samples_per_batch": 1500, "n_batches": 1},
        "iterations": {"max": 5},
    },
}


def variant_config(name: str, variant: str) -> dict[str, Any]:
    """The run config of one molecule and variant (without ``systems``)."""
    if variant == "tuned":
        return merge(merge(BASE, TUNED_BASE), TUNED.get(name, {}))
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r} (choose from {', '.join([*VARIANTS, 'tuned'])})")
    return merge(BASE, VARIANTS[variant])


QUICK = {"iterations": {"max": 3}}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    """``MOL:section.key=value`` (value parsed as YAML) -> per-molecule override dicts."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for item in items:
        mol, _, rest = item.partition(":")
        path, _, value = rest.partition("=")
        node = out[mol]
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def prepare(name: str, hams: Path) -> Path:
    from hinqs.config import load_config
    from hinqs.io.hamiltonian import META_FILE
    from hinqs.loop.settings import RunSettings
    from hinqs.steps.prepare import prepare as prepare_step

    folder = hams / name
    if (folder / META_FILE).exists():
        return folder
    path = hams / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({**BASE, "systems": [{"name": name, **MOLECULES[name]}]}))
    config = load_config(path)
    start = time.perf_counter()
    prepare_step(RunSettings.from_config(config), name, folder)
    print(f"# prepared {name} in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return folder


def fci_state(folder: Path) -> Any:
    from hinqs.chem.floor import FciState, exact_ground_state
    from hinqs.io.hamiltonian import load_hamiltonian

    ham = load_hamiltonian(folder, mmap=False)
    cache = folder / "fci_civec.npz"
    if cache.exists():
        with np.load(cache) as data:
            return ham, FciState(float(data["energy"]), data["civec"], data["strings_a"], data["strings_b"])
    state = exact_ground_state(ham)
    np.savez(cache, energy=state.energy, civec=state.civec, strings_a=state.strings_a, strings_b=state.strings_b)
    return ham, state


def run_one(name: str, variant: str, config: dict[str, Any], out_dir: Path, ham_dir: Path) -> dict[str, Any]:
    import shutil

    from hinqs.config import load_config
    from hinqs.loop.driver import run_loop
    from hinqs.loop.settings import RunSettings

    run_dir = out_dir / variant
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / f"{name}.yaml"
    cfg_path.write_text(yaml.safe_dump({**config, "systems": [{"name": name, **MOLECULES[name]}]}))
    settings = RunSettings.from_config(load_config(cfg_path))
    shutil.rmtree(run_dir / name, ignore_errors=True)
    start = time.perf_counter()
    run = run_loop(settings, name, run_dir, hamiltonian_dir=ham_dir)
    wall = time.perf_counter() - start
    seconds: dict[str, float] = defaultdict(float)
    for row in run.seconds:
        for stage, value in row.items():
            seconds[stage] += value
    row = _best_row(run.system, run.iterations)
    return {**row, "wall": wall, "seconds": _stage_seconds(seconds),
            **provenance(run.system_dir, row["best_iteration"], ham_dir)}  # fmt: skip


def _stage_seconds(seconds: dict[str, float]) -> dict[str, float]:
    return {k: seconds.get(k, 0.0) for k in ("sample", "subspace", "diagonalize", "train")}


def _best_row(system: Any, iterations: int) -> dict[str, Any]:
    """Energy, best iteration, its best batch's K_alpha x K_beta and the last subspace size."""
    from hinqs.io.files import read_determinants, read_result
    from hinqs.loop.convergence import read_status

    status = read_status(system.iteration(iterations).status)
    shape = read_result(system.iteration(status.best_iteration).result).best_record()["product_shape"]
    return {
        "energy": status.best_energy,
        "iterations": iterations,
        "best_iteration": status.best_iteration,
        "k_alpha": int(shape[0]),
        "k_beta": int(shape[1]),
        "subspace_size": len(read_determinants(system.iteration(iterations).subspace)),
    }


def provenance(sys_dir: Path, best_it: int, ham_dir: Path) -> dict[str, Any]:
    """Strings of the best state that the NQS brought in, and the weight they carry there.

    A string is the NQS's when it is new in iteration k's subspace and appears in iteration k's
    samples (expansion adds only strings the grown subspace lacks, so the two never overlap).
    """
    from hinqs.io.determinants import hartree_fock_strings
    from hinqs.io.files import read_determinants, read_state
    from hinqs.io.hamiltonian import active_shape, read_meta
    from hinqs.io.layout import SystemLayout

    system = SystemLayout(sys_dir)
    norb, nelec = active_shape(read_meta(ham_dir), ham_dir)
    previous = np.array(sorted(set(hartree_fock_strings(norb, nelec))), np.uint64)  # HF is no one's find
    from_nqs = np.zeros(0, np.uint64)
    for k in range(1, best_it + 1):
        files = system.iteration(k)
        subspace, samples = read_determinants(files.subspace), read_determinants(files.samples)
        strings = np.union1d(subspace.alpha, subspace.beta)
        sampled = np.union1d(samples.alpha, samples.beta)
        from_nqs = np.union1d(from_nqs, np.intersect1d(np.setdiff1d(strings, previous), sampled))
        previous = strings
    state = read_state(system.iteration(best_it).state)
    strs_a, strs_b = state.strs_a, state.strs_b
    prob = state.amplitudes**2
    prob = prob / prob.sum()
    weight = 0.5 * (
        prob.sum(axis=1)[np.isin(strs_a, from_nqs)].sum() + prob.sum(axis=0)[np.isin(strs_b, from_nqs)].sum()
    )
    return {
        "nqs_strings": int(np.isin(strs_a, from_nqs).sum()),
        "nqs_weight": float(weight),
    }


def collect_one(name: str, variant: str, out_dir: Path) -> dict[str, Any]:
    """A row from a run folder left by an earlier (possibly stopped) run: its completed iterations.

    Stage seconds come from the files the steps wrote (``sample_stats.json``, ``sqd/result.json``,
    ``train.json`` wall times; the subspace step records none), not from timing the steps.
    """
    from hinqs.io.layout import SystemLayout

    system = SystemLayout(out_dir / variant / name)
    done = sorted(int(p.parent.name.removeprefix("iter_")) for p in system.root.glob("iter_*/status.json"))
    if not done:
        raise SystemExit(f"no completed iteration in {system.root}")
    seconds: dict[str, float] = defaultdict(float)
    for k in done:
        files = system.iteration(k)
        for stage, path, key in (
            ("sample", files.sample_stats, ("wall_s",)),
            ("diagonalize", files.result, ("timing", "wall_seconds")),
            ("train", files.train_history, ("wall_s",)),
        ):
            if path.exists():
                value: Any = json.loads(path.read_text())
                for part in key:
                    value = value.get(part, 0.0) if isinstance(value, dict) else 0.0
                seconds[stage] += float(value or 0.0)
    config = yaml.safe_load((out_dir / variant / f"{name}.yaml").read_text())
    row = _best_row(system, done[-1])
    return {**row, "iterations": len(done), "wall": None, "seconds": _stage_seconds(seconds),
            **provenance(system.root, row["best_iteration"], out_dir / "hams" / name), "collected": True,
            "_config": config}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--molecules", default=",".join(MOLECULES), help="comma-separated subset of " + ",".join(MOLECULES)
    )
    parser.add_argument(
        "--variants", default="defaults", help="comma-separated: defaults, no_nqs, no_expansion, neither, tuned"
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples, epochs and iterations (a smoke run)")
    parser.add_argument("--set", action="append", default=[], metavar="MOL:KEY=VALUE", help="override a setting")
    parser.add_argument("--out-dir", default="results/bench_accuracy", help="run folders, Hamiltonians, FCI cache")
    parser.add_argument("--out", help="write the table to this .json (and a .csv beside it)")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (needs the FCI vector)")
    parser.add_argument(
        "--collect", action="store_true", help="do not run: build the rows from the run folders already in --out-dir"
    )
    args = parser.parse_args(argv)

    out_dir = Path(args.out_dir)
    overrides = parse_set(args.set)
    rows = []
    for name in [m for m in args.molecules.split(",") if m]:
        if name not in MOLECULES:
            parser.error(f"unknown molecule {name!r}")
        ham_dir = prepare(name, out_dir / "hams")
        from hinqs.io.hamiltonian import read_meta

        meta = read_meta(ham_dir)
        e_fci = meta["references"].get("fci")
        n_fci = meta["references"].get("n_determinants") or None
        if n_fci is None:
            import math

            n_fci = math.comb(meta["norb"], meta["nelec"][0]) * math.comb(meta["norb"], meta["nelec"][1])
        floor_cache: dict[tuple[int, int], float] = {}
        for variant in [v for v in args.variants.split(",") if v]:
            config = variant_config(name, variant)
            if args.quick:
                config = merge(config, QUICK)
            config = merge(config, overrides.get(name, {}))
            if args.collect:
                rec = collect_one(name, variant, out_dir)
                saved = rec.pop("_config")
                config = merge(BASE, {k: v for k, v in saved.items() if k != "systems"})
            else:
                print(f"# running {name} [{variant}]", file=sys.stderr, flush=True)
                rec = run_one(name, variant, config, out_dir, ham_dir)
            row = {"molecule": name, "variant": variant, "e_fci": e_fci, "n_fci": n_fci, **rec}
            row["error_mha"] = (rec["energy"] - e_fci) * 1000 if e_fci is not None else None
            row["fraction"] = rec["k_alpha"] * rec["k_beta"] / n_fci
            if not args.no_floor:
                key = (rec["k_alpha"], rec["k_beta"])
                cached = ham_dir / f"floor_{key[0]}x{key[1]}.json"
                if key not in floor_cache and cached.exists():
                    floor_cache[key] = float(json.loads(cached.read_text())["floor"])
                if key not in floor_cache:
                    from hinqs.chem.floor import floor_energy

                    ham, state = fci_state(ham_dir)
                    floor_cache[key] = floor_energy(ham, state, *key)
                    cached.write_text(json.dumps({"floor": floor_cache[key]}))
                row["floor"] = floor_cache[key]
                row["floor_error_mha"] = (floor_cache[key] - e_fci) * 1000 if e_fci is not None else None
            row["config"] = {k: config[k] for k in ("nqs", "sqd", "parallel", "iterations") if k in config}
            row["config"]["subspace"] = config.get("subspace", {})
            rows.append(row)
            print_row(row)

    print()
    print(f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''} cores={_cores()}")
    print_table(rows)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"machine": platform.platform(), "cores": _cores(), "rows": rows}, indent=1))
        with open(out.with_suffix(".csv"), "w", newline="") as handle:
            flat = [{k: v for k, v in r.items() if k not in ("config", "seconds")} | r["seconds"] for r in rows]
            writer = csv.DictWriter(handle, fieldnames=list(flat[0]))
            writer.writeheader()
            writer.writerows(flat)
    return 0


def _cores() -> int:
    import os

    return os.cpu_count() or 0


HEADER = (
    f"{'molecule':<11} {'variant':<12} {'E (Ha)':>14} {'err mHa':>8} {'it':>3} {'Ka x Kb':>11} {'frac':>7}"
    f" {'sample':>7} {'subspace':>8} {'diag':>7} {'train':>6} {'nqs str':>7} {'nqs w':>8} {'floor err':>9}"
)


def _fmt(row: dict[str, Any]) -> str:
    s = row["seconds"]
    floor = row.get("floor_error_mha")
    return (
        f"{row['molecule']:<11} {row['variant']:<12} {row['energy']:>14.8f} {row['error_mha']:>8.3f} "
        f"{row['iterations']:>3} {str(row['k_alpha']) + 'x' + str(row['k_beta']):>11} {row['fraction']:>7.2%}"
        f" {s['sample']:>7.1f} {s['subspace']:>8.1f} {s['diagonalize']:>7.1f} {s['train']:>6.1f}"
        f" {row.get('nqs_strings', 0):>7d} {row.get('nqs_weight', 0.0):>8.1e}"
        f" {f'{floor:.3f}' if floor is not None else '-':>9}"
    )


def print_row(row: dict[str, Any]) -> None:
    print(HEADER, file=sys.stderr)
    print(_fmt(row), file=sys.stderr, flush=True)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(HEADER)
    for row in rows:
        print(_fmt(row))


if __name__ == "__main__":
    raise SystemExit(main())
