"""The NQS commands as the workflow calls them: init-model -> sample -> train -> sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import renamed_files, run_hinqs

from hinqs.cli import main
from hinqs.io.determinants import validate_determinants
from hinqs.nqs.exact import strings_with

ENV = {"OMP_NUM_THREADS": "1"}


@pytest.fixture
def workdir(tmp_path, config_file):
    """A config with small NQS settings and a Hamiltonian folder holding only meta.json (all the NQS reads)."""
    (tmp_path / "ham").mkdir()
    (tmp_path / "ham" / "meta.json").write_text(json.dumps({"norb": 8, "nelec": [3, 2]}))
    config = config_file(
        {"name": "toy", "geometry": "H 0 0 0; H 0 0 0.74"},
        seed=21,
        nqs={"samples": 5000, "epochs": 20, "learning_rate": 0.003, "device": "auto", "target": "state"},
    )
    return tmp_path, config


def _teacher(path, nelec=(3, 2)):
    a, b = strings_with(8, nelec[0])[:10], strings_with(8, nelec[1])[:7]
    amp = np.exp(-0.5 * np.add.outer(np.arange(10), np.arange(7)))
    np.savez(path, ci_strs_a=a, ci_strs_b=b, amplitudes=amp / np.linalg.norm(amp), occ_a=np.zeros(8), occ_b=np.zeros(8))


def test_init_sample_train_sample(workdir):
    tmp, config = workdir
    c = str(config)
    init = ["init-model", "--config", c, "--hamiltonian", str(tmp / "ham")]
    done = run_hinqs(*init, "--out", str(tmp / "m0.pt"), env=ENV)
    assert done.returncode == 0, done.stderr
    sample = ["sample", "--config", c, "--model", str(tmp / "m0.pt"), "--iteration", "1"]
    done = run_hinqs(*sample, "--out", str(tmp / "s1.npz"), "--stats", str(tmp / "s1.json"), env=ENV)
    assert done.returncode == 0, done.stderr
    assert main([*sample, "--out", str(tmp / "s1b.npz")]) == 0  # in-process: same draws as the subprocess
    with np.load(tmp / "s1.npz") as first, np.load(tmp / "s1b.npz") as second:
        assert set(first.files) == {"alpha", "beta", "counts", "log_prob"}
        assert first["alpha"].dtype == np.uint64 and first["counts"].dtype == np.int64
        assert first["counts"].sum() == 5000
        validate_determinants(first["alpha"], first["beta"], 8, (3, 2))
        for key in first.files:
            np.testing.assert_array_equal(first[key], second[key])
    assert json.loads((tmp / "s1.json").read_text())["n_unique"] == len(np.load(tmp / "s1.npz")["alpha"])

    _teacher(tmp / "state.npz")
    train = ["train", "--config", c, "--model", str(tmp / "m0.pt"), "--teacher", str(tmp / "state.npz")]
    done = run_hinqs(
        *train,
        "--iteration",
        "1",
        "--out",
        str(tmp / "m1.pt"),
        "--history",
        str(tmp / "h1.json"),
        "--previous-samples",
        str(tmp / "s1.npz"),
        "--probe-samples",
        "5000",
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    history = json.loads((tmp / "h1.json").read_text())
    assert len(history["losses"]) == 20 and history["kl_after"] < history["kl_before"]
    assert history["teacher"]["n_kept"] <= 70 and history["previous"]["probe_samples"] == 5000
    assert {"mass_before", "mass_after", "probe_new_unique"} <= set(history["previous"])
    checkpoint = torch.load(tmp / "m1.pt", weights_only=True)
    assert checkpoint["progress"] == {"iteration": 1, "epochs_done": 20}
    assert checkpoint["optimizer_state"]["state"], "Adam's moments travel with the model"

    done = run_hinqs(
        "sample", "--config", c, "--model", str(tmp / "m1.pt"), "--iteration", "2", "--out", str(tmp / "s2.npz"),
        "--previous-subspace", str(tmp / "s1.npz"), "--stats", str(tmp / "s2.json"), "--temperature", "1.5", env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "n_new_unique" in json.loads((tmp / "s2.json").read_text())


def test_side_files_are_written_before_the_file_the_next_step_reads(workdir):
    """A step killed between its two writes must leave the side file, not the main output:
    Snakemake does not rerun a job added after a checkpoint whose requested output exists
    (hinqs.io.atomic), and the summary's line for that iteration would stay empty."""
    tmp, config = workdir
    c = str(config)
    main(["init-model", "--config", c, "--hamiltonian", str(tmp / "ham"), "--out", str(tmp / "m0.pt")])
    with renamed_files() as sampled:
        sample = ["sample", "--config", c, "--model", str(tmp / "m0.pt"), "--iteration", "1"]
        assert main([*sample, "--out", str(tmp / "s1.npz"), "--stats", str(tmp / "s1.json")]) == 0
    assert sampled == ["s1.json", "s1.npz"]
    _teacher(tmp / "state.npz")
    with renamed_files() as trained:
        train = ["train", "--config", c, "--model", str(tmp / "m0.pt"), "--teacher", str(tmp / "state.npz")]
        assert main([*train, "--iteration", "1", "--out", str(tmp / "m1.pt"), "--history", str(tmp / "h1.json")]) == 0
    assert trained == ["h1.json", "m1.pt"]


def test_bad_input_is_one_line_and_exit_2(workdir, capsys):
    tmp, config = workdir
    c = str(config)
    assert main(["sample", "--config", c, "--model", str(tmp / "none.pt"), "--iteration", "1", "--out", "x.npz"]) == 2
    err = capsys.readouterr().err
    assert "model checkpoint not found" in err and len(err.strip().splitlines()) == 1
    (tmp / "ham" / "meta.json").write_text(json.dumps({"norb": 4, "nelec": [5, 1]}))
    assert main(["init-model", "--config", c, "--hamiltonian", str(tmp / "ham"), "--out", str(tmp / "m.pt")]) == 2
    assert "cannot build the model" in capsys.readouterr().err
    assert not (tmp / "m.pt").exists()


def test_teacher_with_other_electron_counts_is_rejected(workdir, capsys):
    tmp, config = workdir
    c = str(config)
    assert main(["init-model", "--config", c, "--hamiltonian", str(tmp / "ham"), "--out", str(tmp / "m.pt")]) == 0
    _teacher(tmp / "state.npz", nelec=(2, 2))
    args = ["train", "--config", c, "--model", str(tmp / "m.pt"), "--teacher", str(tmp / "state.npz")]
    assert main([*args, "--iteration", "1", "--out", str(tmp / "m1.pt")]) == 2
    assert "teacher does not match the model" in capsys.readouterr().err
    if not torch.cuda.is_available():
        sample = ["sample", "--config", c, "--model", str(tmp / "m.pt"), "--iteration", "1", "--device", "cuda"]
        assert main([*sample, "--out", str(tmp / "s.npz")]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
