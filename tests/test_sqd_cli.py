"""``hinqs diagonalize``: options, config defaults, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from sqd_helpers import parallel_settings, solver_settings, system_with_subspace

from hinqs.cli import main


@pytest.fixture(scope="module")
def lih(tmp_path_factory):
    system = system_with_subspace(tmp_path_factory.mktemp("lih"), "lih", 120, 15)
    return {**system, "ham": str(system["ham"]), "subspace": str(system["subspace"])}


def diagonalize(lih, out, *extra: str) -> int:
    return main(["diagonalize", "--hamiltonian", lih["ham"], "--subspace", lih["subspace"], "--out", str(out), *extra])


def test_config_supplies_defaults_and_options_override(lih, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "systems": [{"name": "lih", "geometry": "Li 0 0 0; H 0 0 1.5949"}],
                "seed": 99,
                "sqd": {"solver": "lean", "n_batches": 2, "samples_per_batch": 30},
                "parallel": {"executor": "sequential", "threads_per_worker": 1, "retries": 0},
            }
        )
    )
    assert diagonalize(lih, tmp_path / "a", "--config", str(config), "--quiet") == 0
    out = capsys.readouterr().out
    assert out.startswith("E = ") and "result.json" in out
    summary = json.loads((tmp_path / "a" / "result.json").read_text())
    assert summary["n_batches"] == 2
    assert summary["settings"]["seed"] == 99 and summary["settings"]["solver"]["solver"] == "lean"
    assert summary["settings"]["parallel"]["executor"] == "sequential"
    assert summary["subspace"]["unique_determinants"] == len(lih["alpha"])
    assert summary["energy"] == min(summary["batch_energies"])
    state = np.load(tmp_path / "a" / "state.npz")
    assert set(state.files) >= {"ci_strs_a", "ci_strs_b", "amplitudes", "occ_a", "occ_b"}
    assert abs(state["occ_a"].sum() - 2) < 1e-10 and abs(state["occ_b"].sum() - 2) < 1e-10

    assert diagonalize(lih, tmp_path / "b", "--config", str(config), "--batches", "3", "--seed", "5", "--quiet") == 0
    summary = json.loads((tmp_path / "b" / "result.json").read_text())
    assert summary["n_batches"] == 3 and summary["settings"]["seed"] == 5
    batch = summary["batches"][0]
    for key in ("index", "status", "energy", "product_shape", "spin_sq", "converged", "seconds", "attempts", "error"):
        assert key in batch


def test_a_subspace_smaller_than_a_batch_is_solved_once(lih, tmp_path):
    assert diagonalize(lih, tmp_path, "--executor", "sequential", "--samples-per-batch", "1000", "--quiet") == 0
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["n_batches"] == 1 and summary["subspace"]["single_batch"]
    assert abs(summary["energy"] - -7.88240341) < 1e-3  # near FCI: the subspace spans most of the space


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_bad_inputs_exit_2_with_one_line(lih, tmp_path, capsys):
    assert diagonalize(lih, tmp_path, "--subspace", str(tmp_path / "missing.npz")) == 2
    assert "subspace not found" in _error(capsys)

    np.savez(tmp_path / "half.npz", alpha=lih["alpha"])
    assert diagonalize(lih, tmp_path, "--subspace", str(tmp_path / "half.npz")) == 2
    assert "lacks beta" in _error(capsys)

    np.savez(tmp_path / "wrong.npz", alpha=lih["alpha"], beta=lih["beta"] | np.uint64(1 << 5))
    assert diagonalize(lih, tmp_path, "--subspace", str(tmp_path / "wrong.npz")) == 2
    assert "do not fit the Hamiltonian" in _error(capsys)

    np.savez(tmp_path / "float.npz", alpha=lih["alpha"].astype(float), beta=lih["beta"].astype(float))
    assert diagonalize(lih, tmp_path, "--subspace", str(tmp_path / "float.npz")) == 2
    assert "integer CI strings" in _error(capsys)

    args = ["diagonalize", "--hamiltonian", str(tmp_path), "--subspace", lih["subspace"], "--out", str(tmp_path)]
    assert main(args) == 2
    assert "no Hamiltonian" in _error(capsys)

    assert diagonalize(lih, tmp_path, "--workers", "0") == 2
    assert "workers must be at least 1" in _error(capsys)

    assert main(["diagonalize", "--hamiltonian", lih["ham"], "--configs", lih["subspace"], "--out", str(tmp_path)]) == 2
    assert "--configs is now --subspace" in _error(capsys)
    assert not (tmp_path / "result.json").exists()


def test_registry_names_every_solver_and_executor_once():
    """One list of names: the config schema's enums, the settings, the solver and executor factories."""
    from importlib.resources import files

    from hinqs.sqd.executors import POOL_BACKENDS, SequentialExecutor, make_executor
    from hinqs.sqd.registry import DEVICES, EXECUTORS, SOLVERS
    from hinqs.sqd.solvers import SOLVER_FUNCTIONS

    schema = yaml.safe_load((files("hinqs") / "schemas" / "config.schema.yaml").read_text())["properties"]
    assert tuple(schema["sqd"]["properties"]["solver"]["enum"]) == SOLVERS
    assert tuple(schema["sqd"]["properties"]["device"]["enum"]) == DEVICES
    assert tuple(schema["parallel"]["properties"]["executor"]["enum"]) == EXECUTORS
    assert tuple(SOLVER_FUNCTIONS) == SOLVERS
    assert ("sequential", *POOL_BACKENDS, "distributed") == EXECUTORS
    for name in SOLVERS:
        assert solver_settings(solver=name).solver == name
    for name in EXECUTORS:
        assert parallel_settings(executor=name).executor == name
        if name == "distributed":  # needs MPI (this process becomes a one-rank world)
            pytest.importorskip("mpi4py")
            from hinqs.sqd.executors.distributed import DistributedExecutor

            assert type(make_executor(name, threads=1, kill_grace=10.0)) is DistributedExecutor
            continue
        expected = SequentialExecutor if name == "sequential" else POOL_BACKENDS[name]
        assert type(make_executor(name, threads=1, kill_grace=10.0)) is expected
