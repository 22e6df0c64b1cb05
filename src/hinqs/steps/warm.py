"""numba's kernels compiled once per installation, before any worker needs them, and what it cost.

numba compiles a kernel at its first call and writes it to its cache (next to the sources, or
``NUMBA_CACHE_DIR``), from which a later process loads it in seconds. hinqs' kernels take
about a minute of one core to compile (60 s for 75 specialisations on the 2-core development
VM; a first ``direct`` solve took 88 s cold against 2.7 s from the cache), so without a
warm-up every worker of a fresh installation compiles the same kernels at once, in its first
batch's time and timeout. ``make setup`` warms the cache (``python -m hinqs.steps.warm``);
the diagonalize step checks it (:func:`kernels_cached`, a fraction of a second) and, where a
kernel is missing (a fresh install without ``make setup``, edited sources), compiles them in
the parent before its workers start and logs what it cost.

The warm-up runs the real code paths on a tiny made-up Hamiltonian (6 orbitals): the
``direct`` solve of a closed shell (the singlet's mirror) and of an open shell with the spin
penalty, the rectangular product of the expansion, a complete and a sampled EN-PT2, and a
row block of a spread product, so every argument type the loop uses is compiled.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from itertools import combinations

import numpy as np

NORB = 6  # a tiny made-up active space: every kernel runs, in milliseconds once compiled


@dataclass(frozen=True)
class Warmup:
    """Seconds the warm-up took and how many kernel specialisations numba compiled or loaded."""

    seconds: float
    compiled: int
    loaded: int

    def line(self) -> str:
        source = f"{self.compiled} compiled, {self.loaded} from numba's cache"
        return f"hinqs kernels ready in {self.seconds:.1f} s ({source})"


def _integrals(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric one-body matrix and a two-body tensor with the 8-fold symmetry of real orbitals."""
    h = rng.normal(size=(NORB, NORB))
    g = rng.normal(size=(NORB,) * 4) * 0.05
    g = g + g.transpose(1, 0, 2, 3)
    g = g + g.transpose(0, 1, 3, 2)
    g = g + g.transpose(2, 3, 0, 1)
    return h + h.T, g


def _strings(nel: int) -> np.ndarray:
    return np.array(sorted(sum(1 << i for i in c) for c in combinations(range(NORB), nel)), dtype=np.int64)


def _dispatchers() -> list:
    """Every numba kernel of :mod:`hinqs.kernel`."""
    from numba.core.registry import CPUDispatcher

    from hinqs.kernel import chunks, links, operator, rows

    modules = (chunks, links, operator, rows)
    return [v for module in modules for v in vars(module).values() if isinstance(v, CPUDispatcher)]


def kernels_cached() -> bool:
    """Whether numba's cache holds hinqs' kernels compiled from the current sources: some index
    file is there and none is stale (numba's own bookkeeping, read in milliseconds: an index
    written for an older source reads as empty; helpers inlined into other kernels have none).
    False where it cannot tell: the warm-up is then run, which is always right."""
    try:
        files = [d._cache._cache_file for d in _dispatchers()]
        indexed = [f for f in files if os.path.exists(f._index_path)]
        return bool(indexed) and all(f._load_index() for f in indexed)
    except Exception:  # a numba without these internals
        return False


def _kernel_counts() -> tuple[int, int]:
    """(compiled, loaded) specialisations over every numba kernel of :mod:`hinqs.kernel`."""
    compiled = loaded = 0
    for dispatcher in _dispatchers():
        compiled += sum(dispatcher.stats.cache_misses.values())
        loaded += sum(dispatcher.stats.cache_hits.values())
    return compiled, loaded


def warm_kernels() -> Warmup:
    """Run every kernel once (compiling or loading it); on one thread, PySCF not loaded."""
    from hinqs.kernel import ProductHamiltonian
    from hinqs.kernel.block import RowBlock
    from hinqs.loop.settings import RunSettings, with_overrides
    from hinqs.sqd.solvers import solve
    from hinqs.subspace.expansion import h_on_block
    from hinqs.subspace.pt2 import en_pt2
    from hinqs.threads import thread_limit

    started = time.perf_counter()
    closed, open_a = _strings(2), _strings(3)
    settings = RunSettings.defaults().sqd.solver
    with thread_limit(1, load_pyscf=False):
        # Read-only integrals (the memory-mapped files every step reads) are another argument
        # type to numba than writable ones (a user's script, the tests): both are compiled.
        for writable in (False, True):
            h, g = _integrals(np.random.default_rng(0))
            h.flags.writeable = g.flags.writeable = writable
            singlet = solve(closed, closed, h, g, (2, 2), settings)  # the mirrored product
            solve(open_a, closed, h, g, (3, 2), with_overrides(settings, spin_sq=0.75))  # penalty, unmirrored
            c = np.asarray(singlet.state.amplitudes).reshape(len(closed), len(closed))
            h_on_block(h, g, (2, 2), closed[:8], closed, c[:8], closed[8:])  # the expansion's rectangle
            for max_dimension in (10**6, 1):  # complete (pairs) and sampled
                en_pt2(h, g, 0.0, (2, 2), closed[:10], closed[:10], c[:10, :10], max_dimension,
                       relative_error=0.5, rng=np.random.default_rng(1), energy=None)  # fmt: skip
            ham = ProductHamiltonian(h, g, (2, 2), closed, closed)
            block = RowBlock(ham, 0, 7, upper=True)  # a rank's rows of a spread product
            out = block.mirror(block.apply(block.compact(c)))
            block.fill_from(out, np.ascontiguousarray(c[7:, :7]), 7)
            block.apply_spin_square(block.compact(c))
            block.diagonal()
    compiled, loaded = _kernel_counts()
    return Warmup(time.perf_counter() - started, compiled, loaded)


def main() -> int:
    """``python -m hinqs.steps.warm``: warm numba's cache (``make setup``) and say what it cost."""
    print(warm_kernels().line(), file=sys.stdout, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
