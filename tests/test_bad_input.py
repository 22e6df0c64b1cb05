"""Every bad input: exit code 2, a one-line message naming the problem, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import H2O, run_hinqs, write_config

GOOD = {"name": "h2o", "geometry": H2O, "basis": "sto-3g"}


def config_with(tmp_path: Path, system: dict | None = None, **top) -> Path:
    return write_config(tmp_path / "config.yaml", {"systems": [system or GOOD], **top})


CASES = {
    "unknown top-level key": (lambda t: config_with(t, colour="red"), "unknown key 'colour'"),
    "unknown nested key": (
        lambda t: config_with(t, sqd={"n_batch": 3}),
        "sqd: unknown key 'n_batch' (did you mean 'n_batches'?)",
    ),
    "wrong type": (lambda t: config_with(t, nqs={"samples": "many"}), "nqs.samples: 'many' is not of type 'integer'"),
    "relative error above 1": (lambda t: config_with(t, pt2={"relative_error": 2}), "pt2.relative_error: 2 is"),
    "first atom missing a coordinate": (
        lambda t: config_with(t, {**GOOD, "geometry": "O 0 0; H 0 0.76 0.59; H 0 -0.76 0.59"}),
        "atom 1 ('O 0 0') has 3 fields",
    ),
    "wrong enum": (lambda t: config_with(t, parallel={"executor": "threads"}), "parallel.executor"),
    "unknown basis": (lambda t: config_with(t, {**GOOD, "basis": "no-such-basis"}), "unknown basis 'no-such-basis'"),
    "spin incompatible": (lambda t: config_with(t, {**GOOD, "spin": 1}), "10 electrons are incompatible with spin=1"),
    "active space too large": (
        lambda t: config_with(t, {**GOOD, "active_space": [6, 9]}),
        "is larger than the basis (7 orbitals)",
    ),
    "frozen core too large": (lambda t: config_with(t, {**GOOD, "frozen_core": 6}), "frozen_core=6 exceeds"),
    "geometry and fcidump": (lambda t: config_with(t, {**GOOD, "fcidump": "x"}), "exactly one of 'geometry'"),
    "missing fcidump": (
        lambda t: config_with(t, {"name": "x", "fcidump": str(t / "absent.fcidump")}),
        "FCIDUMP file not found",
    ),
    "malformed fcidump": (
        lambda t: (
            (t / "bad.fcidump").write_text("&FCI NORB=2,NELEC=2,\n&END\n 0.5 1 1 x 1\n"),
            config_with(t, {"name": "x", "fcidump": str(t / "bad.fcidump")}),
        )[1],
        "malformed FCIDUMP",
    ),
    "not a mapping": (
        lambda t: (t / "config.yaml").write_text("- 1\n- 2\n") and t / "config.yaml",
        "must be a mapping",
    ),
    "invalid yaml": (lambda t: (t / "config.yaml").write_text("systems: [\n") and t / "config.yaml", "not valid YAML"),
    "missing config": (lambda t: t / "nope.yaml", "config file not found"),
    "no systems": (lambda t: write_config(t / "config.yaml", {"seed": 1}), "'systems' is a required property"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path):
    make, expected = CASES[case]
    cfg = make(tmp_path)
    out = tmp_path / "out" / "ham"
    proc = run_hinqs("prepare", "--config", str(cfg), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unwritable_output_folder(tmp_path):
    cfg = config_with(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    proc = run_hinqs("prepare", "--config", str(cfg), "--out", str(blocker / "ham"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "is not writable" in proc.stderr
    assert blocker.read_text() == "a file where a folder should be"


def test_unknown_system_name(tmp_path):
    proc = run_hinqs("prepare", "--config", str(config_with(tmp_path)), "--out", str(tmp_path / "h"), "--system", "nh3")
    assert proc.returncode == 2
    assert "no system named 'nh3'" in proc.stderr
    assert not (tmp_path / "h").exists()
