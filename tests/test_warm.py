"""numba's kernels warmed once (``hinqs.steps.warm``): after the warm-up, the loop's real steps
compile nothing more, so no worker of a fresh installation compiles in its first batch's time."""

from __future__ import annotations

import numpy as np
import pytest
from sqd_helpers import system_with_subspace

pytestmark = pytest.mark.usefixtures("one_solver_thread")


def test_after_the_warm_up_the_steps_compile_no_kernel(tmp_path):
    from hinqs.io.hamiltonian import load_hamiltonian
    from hinqs.loop.settings import RunSettings
    from hinqs.steps.warm import _kernel_counts, warm_kernels
    from hinqs.subspace.expansion import h_on_block
    from hinqs.subspace.pt2 import en_pt2

    warm = warm_kernels()
    assert warm.compiled + warm.loaded > 0 and warm.seconds > 0
    assert "hinqs kernels ready in" in warm.line()
    before = _kernel_counts()

    # What the steps run, on a real (memory-mapped, read-only) Hamiltonian: an open shell and
    # a closed shell, the solve (mirrored), the expansion's rectangle, complete and sampled PT2.
    from hinqs.sqd.solvers import solve

    for name in ("n2", "nh"):
        system = system_with_subspace(tmp_path / name, name, 60, 12)
        ham = load_hamiltonian(system["ham"])
        assert not ham.eri.flags.writeable
        sa = np.unique(system["alpha"]).astype(np.int64)
        sb = np.unique(system["beta"]).astype(np.int64)
        out = solve(sa, sb, ham.hcore, ham.eri, tuple(ham.nelec), RunSettings.defaults().sqd.solver)
        c = np.asarray(out.state.amplitudes).reshape(len(sa), len(sb))
        h_on_block(ham.hcore, ham.eri, tuple(ham.nelec), sa[:6], sb, c[:6], sa[6:])
        for max_dimension in (10**6, 1):
            en_pt2(ham.hcore, ham.eri, ham.ecore, tuple(ham.nelec), sa, sb, c, max_dimension, relative_error=0.5,
                   rng=np.random.default_rng(0), energy=out.energy + ham.ecore)  # fmt: skip
    assert _kernel_counts() == before


def test_the_step_sees_a_cold_cache(tmp_path):
    """An empty numba cache (a fresh install without make setup) reads as cold, so the
    diagonalize step compiles the kernels once in its parent; the warmed one reads as warm."""
    import os
    import subprocess
    import sys

    from hinqs.steps.warm import kernels_cached, warm_kernels

    warm_kernels()
    assert kernels_cached()
    check = "from hinqs.steps.warm import kernels_cached; print(kernels_cached())"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "empty")}
    cold = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True)
    assert cold.stdout.strip() == "False"
