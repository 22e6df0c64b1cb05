"""Old spellings of renamed commands and options get one line naming the new one, and exit 2."""

from __future__ import annotations

import pytest

from hinqs.cli import main

CASES = {
    "basis command": (["basis", "--samples", "s.npz"], "the command 'basis' is now 'subspace'"),
    "diagonalize --configs": (["diagonalize", "--configs", "p.npz"], "--configs is now --subspace"),
    "diagonalize --pool": (["diagonalize", "--pool", "p.npz"], "--pool is now --subspace"),
    "sample --known": (["sample", "--known", "s.npz"], "--known is now --previous-subspace"),
    "subspace --previous": (["subspace", "--previous", "b.npz"], "--previous is now --previous-subspace"),
    "check --previous": (["check", "--previous=s.json"], "--previous is now --previous-status"),
    "prepare positional config": (["prepare", "c.yaml", "--out", "h"], "now given as --config FILE"),
    "verify positional config": (["verify", "c.yaml"], "now given as --config FILE"),
    "prepare without config": (["prepare", "--out", "h"], "the run config is required: --config FILE"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_old_spelling_names_the_new_one(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv, message = CASES[case]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_basis_config_section_names_subspace(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("systems: [{name: h2, geometry: 'H 0 0 0; H 0 0 0.74'}]\nbasis: {max_size: 10}\n")
    assert main(["prepare", "--config", str(cfg), "--out", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'basis' is now called 'subspace'" in err[0]
