"""The summary and its answer line, rebuilt from real step files (LiH/STO-3G, real solves)."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
from conftest import LIH, write_config

from hinqs.cli import main
from hinqs.io.determinants import Determinants
from hinqs.io.files import write_determinants
from hinqs.io.layout import SystemLayout
from hinqs.loop.settings import RunSettings, with_overrides
from hinqs.sqd.step import run_diagonalization
from hinqs.summary import build_summary, result_line

# Strings per spin of each iteration's subspace: the third is the largest, hence the lowest energy.
STRINGS_PER_ITERATION = (1, 3, 6, 3, 2)


def _strings(norb: int, n: int, count: int) -> np.ndarray:
    """The ``count`` lowest CI strings of ``n`` electrons in ``norb`` orbitals (HF first)."""
    every = sorted(sum(1 << i for i in occ) for occ in itertools.combinations(range(norb), n))
    return np.array(every[:count], np.uint64)


@pytest.fixture(scope="module")
def lih_run(tmp_path_factory):
    """A system folder prepared by ``hinqs prepare`` whose five iterations each diagonalised a real
    subspace (no PT2, no NQS)."""
    root = tmp_path_factory.mktemp("lih_run") / "lih"
    config = write_config(root.parent / "config.yaml", {"systems": [{"name": "lih", "geometry": LIH}]})
    ham = root / "hamiltonian"
    assert main(["prepare", "--config", str(config), "--out", str(ham)]) == 0
    settings = RunSettings.defaults().for_hamiltonian(ham)
    system = SystemLayout(root)
    for k, count in enumerate(STRINGS_PER_ITERATION, start=1):
        strings = _strings(6, 2, count)
        alpha, beta = (a.ravel() for a in np.meshgrid(strings, strings, indexing="ij"))
        write_determinants(system.iteration(k).subspace, Determinants(alpha, beta, np.ones(len(alpha), np.int64)))
        step = with_overrides(settings.sqd_step(k), parallel__executor="sequential")
        run_diagonalization(ham, alpha, beta, None, system.iteration(k).sqd, step)
    return root


@pytest.mark.parametrize(
    "unfinished",
    [(2,), (1,), (2, 5), (4, 5)],
    ids=["in the middle", "the first", "in the middle and at the end", "at the end"],
)
def test_best_iteration_names_the_iteration_that_has_the_best_energy(lih_run, tmp_path, unfinished):
    """Unfinished iterations (no result.json) must not shift which iteration the answer line describes."""
    root = shutil.copytree(lih_run, tmp_path / "lih")
    for k in unfinished:
        shutil.rmtree(SystemLayout(root).iteration(k).sqd)
    summary = build_summary(root, len(STRINGS_PER_ITERATION))
    records = {r["iteration"]: r for r in summary["per_iteration"]}
    finished = {k: r["energy"] for k, r in records.items() if r["energy"] is not None}
    assert summary["best_iteration"] == min(finished, key=finished.get) == 3
    assert summary["best_energy"] == records[3]["energy"]
    best_dim = 6 * 6
    line = result_line(summary)
    assert "E = " in line and "(iteration 3)" in line, line
    assert f"6 x 6 strings = {best_dim:,} determinants" in line and "subspace of 36)" in line, line


def test_the_extrapolation_fits_only_the_best_iteration_s_orbitals():
    """Each orbital basis has its own line of E_var against E_PT2: points from before the
    natural-orbital turn (iterations 1-3 here, another slope and intercept) must not enter."""
    from hinqs.summary.aggregate import _pt2_summary

    def record(k, e_pt2, intercept, slope):
        e_var = intercept - slope * e_pt2
        return {"iteration": k, "energy": e_var, "e_pt2": e_pt2, "e_pt2_error": None, "e_pt2_ci95": None,
                "e_var_plus_pt2": e_var + e_pt2, "pt2_complete": True}  # fmt: skip

    before = [record(k, x, -1.000, 1.0) for k, x in ((1, -0.030), (2, -0.020), (3, -0.012))]
    after = [record(k, x, -1.0005, 0.9) for k, x in ((4, -0.011), (5, -0.006), (6, -0.004))]
    turned = _pt2_summary(before + after, after[-1]["energy"], -1.0005, turned=3)
    assert turned["iteration"] == 6 and turned["extrapolated"]["points"] == 3
    assert turned["extrapolated"]["energy"] == pytest.approx(-1.0005, abs=1e-12)
    mixed = _pt2_summary(before + after, after[-1]["energy"], -1.0005)
    assert abs(mixed["extrapolated"]["energy"] - -1.0005) > 1e-4  # one line through both bases misses
