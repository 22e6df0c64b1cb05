"""The batch solvers: one eigenproblem, two ways to finish it.

Both diagonalise the Hamiltonian in the product space ``ci_strs_a x ci_strs_b`` with PySCF's
selected-CI Davidson (``selected_ci.kernel_fixed_space``), with the same arguments, so both
find the same vector bit for bit. They differ in what they compute afterwards:

``solve_fermion``
    qiskit-addon-sqd's solver, the default: the energy from the 1- and 2-particle density
    matrices, occupancies from the 1-RDMs, <S^2>. It does not say whether Davidson
    converged, so we find out from the residual ``|A c - (c.A c) c|`` of the operator
    Davidson used (``H``, plus the ``fix_spin_`` penalty when ``spin_sq`` is set), at the
    cost of one more ``A|c>`` product (about one Davidson iteration). The criterion is
    PySCF's own residual test, ``|r| < sqrt(conv_tol)``.

``lean``
    Only what the loop needs: the energy from one ``H|c>`` product (``E = c.Hc`` for a
    normalised ``c``), occupancies from the squared amplitudes summed over the other spin
    (exactly the diagonal of the 1-RDMs, without building them), <S^2> through PySCF's
    selected-CI ``spin_square`` (cheap: no two-particle work), and convergence as PySCF's
    Davidson reported it. With ``spin_sq`` set the Davidson eigenvalue includes the penalty,
    which is why the energy always comes from the plain ``H|c>``.

``direct``
    The same eigenproblem on hinqs' own product-space kernel (:mod:`hinqs.kernel`), which
    follows the subspace's single-excitation links instead of contracting over every
    orbital pair: an order of magnitude faster per core at 26 orbitals. hinqs' own one-root
    Davidson (:mod:`hinqs.sqd.davidson`: PySCF's preconditioner, level shift and subspace
    size; every reduction summed over fixed chunks in a fixed order), the same code the
    ``distributed`` executor runs over row blocks on many ranks
    (:mod:`hinqs.sqd.distributed`), here on one rank holding every row; the energy,
    residual and <S^2> from the final vector. A solve unconverged at ``max_cycle`` is
    continued from its current vector, up to four times ``max_cycle`` cycles. The kernel
    sums each output element on one thread in a fixed order, so the solve gives the same
    bits at any thread count and any number of ranks. With ``sqd.device`` ``cuda`` (or
    ``auto`` on a GPU node) the products run on the torch kernel
    (:mod:`hinqs.kernel.torch_kernel`) instead: same tables, same Davidson on the host,
    energies equal to the numba path's to float rounding.

Energies here are electronic: the caller adds the core energy. Integrals may be read-only
memory maps; nothing here writes to them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hinqs.io.determinants import spin_of_square, target_spin_square
from hinqs.io.files import GroundState
from hinqs.sqd.settings import SolverSettings
from hinqs.threads import kernel_on_task_threads


@dataclass
class SolveOutput:
    """What a solver returns: electronic energy, state and diagnostics."""

    energy: float
    state: GroundState
    spin_sq: float | None
    converged: bool
    residual_norm: float | None
    warnings: list[str] = field(default_factory=list)


def _as_int64(strings: np.ndarray) -> np.ndarray:
    """PySCF's selected CI keeps CI strings as int64; bit patterns are unchanged."""
    return np.ascontiguousarray(np.asarray(strings, dtype=np.uint64).view(np.int64))


def _absorbed_h2e(hcore: np.ndarray, eri: np.ndarray, norb: int, nelec: tuple[int, int]) -> np.ndarray:
    """The two-electron operator with the one-electron part absorbed, as kernel_fixed_space builds it."""
    from pyscf import ao2mo
    from pyscf.fci import direct_spin1

    h2e = direct_spin1.absorb_h1e(np.asarray(hcore), np.asarray(eri), norb, nelec, 0.5)
    return ao2mo.restore(1, h2e, norb)


def _sci_vector(amplitudes: np.ndarray, strs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The amplitudes tagged with their CI strings, as PySCF's selected-CI functions take them.

    PySCF offers this only as the private ``selected_ci._as_SCIvector`` (qiskit-addon-sqd
    calls it too); it is used here and nowhere else.
    """
    from pyscf.fci import selected_ci

    return selected_ci._as_SCIvector(amplitudes, strs)


@dataclass(frozen=True)
class _Rayleigh:
    """``A|c>`` for a Davidson vector ``c`` and what follows from it: the Rayleigh quotient and residual."""

    hc: np.ndarray
    norm2: float
    value: float

    def residual(self, amplitudes: np.ndarray) -> float:
        """``|A c - (c.A c) c| / |c|``: PySCF's Davidson calls it converged below ``sqrt(conv_tol)``."""
        return float(np.linalg.norm(self.hc - self.value * amplitudes)) / math.sqrt(self.norm2)


# From this product-space dimension on a solve takes minutes: PySCF's Davidson then prints a
# line per cycle (cycle, residual |r|, electronic energy e) to the step's log.
PROGRESS_DIMENSION = 100_000
_DAVIDSON_CYCLES = 5  # PySCF's logger.DEBUG: the level of Davidson's per-cycle line


def _davidson_options(guess: np.ndarray | None, strs: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """``kernel_fixed_space`` options: ``ci0`` when a guess is given (a plain array is ignored:
    it must carry its strings), else PySCF's own guess; per-cycle lines for long solves."""
    options: dict[str, Any] = {}
    if len(strs[0]) * len(strs[1]) >= PROGRESS_DIMENSION:
        options["verbose"] = _DAVIDSON_CYCLES
    if guess is not None:
        options["ci0"] = _sci_vector(np.ascontiguousarray(guess, dtype=np.float64), strs)
    return options


def _rayleigh(
    myci: Any,
    hcore: np.ndarray,
    eri: np.ndarray,
    amplitudes: np.ndarray,
    strs: tuple[np.ndarray, np.ndarray],
    nelec: tuple[int, int],
) -> _Rayleigh:
    """One product of ``myci``'s operator (plain ``H``, or with ``fix_spin_``'s penalty) with the vector.

    The one place both solvers build ``H|c>``: ``solve_fermion``'s residual check and
    ``lean``'s energy.
    """
    norb = hcore.shape[0]
    h2e = _absorbed_h2e(hcore, eri, norb, nelec)
    link_index = myci.gen_linkstr(norb, nelec, tril=True, ci_strs=strs)
    vec = _sci_vector(amplitudes, strs)
    hc = np.asarray(myci.contract_2e(h2e, vec, norb, nelec, link_index)).reshape(amplitudes.shape)
    norm2 = float(np.vdot(amplitudes, amplitudes))
    return _Rayleigh(hc, norm2, float(np.vdot(amplitudes, hc)) / norm2)


def _make_solver(settings: SolverSettings) -> Any:
    """A SelectedCI object, with the fix_spin_ penalty when a target <S^2> is set."""
    from pyscf import fci

    myci = fci.selected_ci.SelectedCI()
    if settings.spin_sq is not None:
        myci = fci.addons.fix_spin_(myci, ss=settings.spin_sq, shift=settings.shift)
    return myci


def _occupancies(amplitudes: np.ndarray, strs_a: np.ndarray, strs_b: np.ndarray, norb: int):
    """Orbital occupancies from |c|^2 marginals: diag(rdm1a) and diag(rdm1b) without the RDMs."""
    from hinqs.io.determinants import strings_to_occupations

    probs = amplitudes * amplitudes
    norm = probs.sum()
    occ_a = probs.sum(axis=1) @ strings_to_occupations(strs_a.view(np.uint64), norb) / norm
    occ_b = probs.sum(axis=0) @ strings_to_occupations(strs_b.view(np.uint64), norb) / norm
    return occ_a, occ_b


def _convergence_warning(residual: float | None, settings: SolverSettings, continued: bool = False) -> list[str]:
    """The result's word on an unconverged solve (``continued``: hinqs' Davidson, which went on past
    max_cycle from its current vector up to its bound before taking the energy unconverged)."""
    if continued:
        from hinqs.sqd.davidson import CONTINUE_FACTOR

        limit = f"{CONTINUE_FACTOR} x max_cycle = {CONTINUE_FACTOR * settings.max_cycle} cycles"
        text = f"Davidson did not converge within {limit} (conv_tol={settings.conv_tol:g}); energy taken unconverged"
    else:
        text = f"Davidson did not converge within max_cycle={settings.max_cycle} (conv_tol={settings.conv_tol:g})"
    if residual is not None:
        text += f": residual {residual:.3g}, sqrt(conv_tol) = {math.sqrt(settings.conv_tol):.3g}"
    return [text]


def _output(
    strs: tuple[np.ndarray, np.ndarray],
    amplitudes: np.ndarray,
    occupancies: tuple[np.ndarray, np.ndarray],
    energy: float,
    spin_sq: float,
    converged: bool,
    residual: float | None,
    settings: SolverSettings,
    continued: bool = False,
) -> SolveOutput:
    """What every solver returns: the state over its (int64) strings, with the convergence warning."""
    strs_a, strs_b = (np.asarray(x).view(np.uint64) for x in strs)
    return SolveOutput(
        energy=energy,
        state=GroundState(strs_a, strs_b, amplitudes, *occupancies),
        spin_sq=spin_sq,
        converged=converged,
        residual_norm=residual,
        warnings=[] if converged else _convergence_warning(residual, settings, continued),
    )


def solve_with_solve_fermion(
    ci_strs_a: np.ndarray,
    ci_strs_b: np.ndarray,
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    settings: SolverSettings,
    guess: np.ndarray | None = None,
) -> SolveOutput:
    """qiskit-addon-sqd's ``solve_fermion`` plus a residual check of the Davidson vector."""
    from qiskit_addon_sqd.fermion import solve_fermion

    strs = (_as_int64(ci_strs_a), _as_int64(ci_strs_b))
    energy, sci_state, (occ_a, occ_b), spin_sq = solve_fermion(
        strs,
        hcore,
        eri,
        spin_sq=settings.spin_sq,
        shift=settings.shift,
        max_cycle=settings.max_cycle,
        tol=settings.conv_tol,
        **_davidson_options(guess, strs),
    )
    amplitudes = np.asarray(sci_state.amplitudes, dtype=np.float64)
    strs = (np.asarray(sci_state.ci_strs_a), np.asarray(sci_state.ci_strs_b))

    # Residual of the operator Davidson used: solve_fermion keeps PySCF's converged flag to itself.
    residual = _rayleigh(_make_solver(settings), hcore, eri, amplitudes, strs, nelec).residual(amplitudes)
    converged = residual < math.sqrt(settings.conv_tol)
    return _output(strs, amplitudes, (occ_a, occ_b), float(energy), float(spin_sq), converged, residual, settings)


def solve_lean(
    ci_strs_a: np.ndarray,
    ci_strs_b: np.ndarray,
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    settings: SolverSettings,
    guess: np.ndarray | None = None,
) -> SolveOutput:
    """The same Davidson through ``kernel_fixed_space``; energy from one ``H|c>`` product."""
    from pyscf.fci import selected_ci

    norb = hcore.shape[0]
    strs = (_as_int64(ci_strs_a), _as_int64(ci_strs_b))
    myci = _make_solver(settings)
    options = _davidson_options(guess, strs)
    if "verbose" in options:  # a long solve: a line per cycle with the time left
        from hinqs.sqd.progress import DavidsonProgress

        options["callback"] = DavidsonProgress(settings.conv_tol, settings.max_cycle)
    _, vec = selected_ci.kernel_fixed_space(
        myci, hcore, eri, norb, nelec, strs, max_cycle=settings.max_cycle, tol=settings.conv_tol, **options
    )
    converged = bool(np.all(myci.converged))
    amplitudes = np.asarray(vec, dtype=np.float64).reshape(len(strs[0]), len(strs[1]))

    # H without the spin penalty: the energy, not the eigenvalue.
    product = _rayleigh(selected_ci.SelectedCI(), hcore, eri, amplitudes, strs, nelec)
    energy = product.value
    # Without a penalty, H is Davidson's operator and the residual comes for free.
    residual = product.residual(amplitudes) if settings.spin_sq is None else None
    norm2 = product.norm2
    spin_sq = float(selected_ci.spin_square(_sci_vector(amplitudes, strs), norb, nelec)[0]) / norm2
    occupancies = _occupancies(amplitudes, strs[0], strs[1], norb)
    return _output(strs, amplitudes, occupancies, energy, spin_sq, converged, residual, settings)


class WholeOperator:
    """A one-process operator (numba or torch) as the Davidson of :mod:`hinqs.sqd.davidson` takes it:
    one rank holding every row, so "this rank's rows" are the whole matrix. The numba kernel's
    products run as one block of all rows (:class:`hinqs.kernel.block.RowBlock`: one pass,
    no whole-size temporaries; the bits of ``ProductHamiltonian.apply``)."""

    def __init__(self, ham: Any, mirrored: bool = False) -> None:
        from hinqs.kernel import ProductHamiltonian
        from hinqs.kernel.block import RowBlock
        from hinqs.sqd.davidson import Group, RowSpace

        numba = isinstance(ham, ProductHamiltonian)
        self.mirrored = mirrored and numba and ham.mirrored_spins
        self.ham = RowBlock(ham, 0, ham.shape[0], upper=self.mirrored) if numba else ham
        self.shape = ham.shape
        self.space = RowSpace(Group(None), ham.shape)

    def symmetric(self, c: np.ndarray) -> np.ndarray:
        """``c`` (in place) with the elements its rows do not compute set from the transposed ones,
        which they do (:func:`hinqs.kernel.rows.computes`), where :attr:`mirrored`."""
        return self.ham.mirror(c) if self.mirrored else c

    def diagonal(self) -> np.ndarray:
        return self.symmetric(self.ham.diagonal())

    def apply(self, c: np.ndarray) -> np.ndarray:
        return self.symmetric(self.ham.apply(c))

    def apply_both(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``H C`` and ``S^2 C`` (the spin penalty's two products)."""
        return self.apply(c), self.apply_spin_square(c)

    def apply_spin_square(self, c: np.ndarray) -> np.ndarray:
        return self.symmetric(self.ham.apply_spin_square(c))

    def scatter(self, whole: np.ndarray | None) -> np.ndarray | None:
        """This rank's rows of a whole vector: all of it."""
        return None if whole is None else np.asarray(whole, dtype=np.float64).reshape(self.shape)

    def gather(self, c: np.ndarray) -> np.ndarray:
        """The whole vector from the ranks' rows: this one's."""
        return c


def _kernel_operator(
    hcore: np.ndarray, eri: np.ndarray, nelec: tuple[int, int], strs_a: np.ndarray, strs_b: np.ndarray, device: str
) -> Any:
    """The numba :class:`hinqs.kernel.ProductHamiltonian` for ``sqd.device: cpu`` (torch is not
    imported then), else the torch kernel on the device ``sqd.device`` resolves to.

    A CUDA batch is checked against the GPU's free memory before any table is built: one that
    does not fit is refused in one line (:func:`hinqs.kernel.device_memory.check_device_fits`).
    """
    from hinqs.kernel import ProductHamiltonian

    if device == "cpu":
        return ProductHamiltonian(hcore, eri, nelec, strs_a, strs_b)
    from hinqs.kernel import torch_kernel
    from hinqs.kernel.device_memory import WORK_MB, device_need
    from hinqs.sqd.device_check import resolve_device

    where = resolve_device(device)
    if where is None:  # auto without a GPU
        return ProductHamiltonian(hcore, eri, nelec, strs_a, strs_b)
    shape = (len(strs_a), len(strs_b))
    torch_kernel.prepare_device(where, shape, device_need(shape, shape, hcore.shape[0], nelec, WORK_MB["cuda"]))
    return torch_kernel.TorchProductHamiltonian.from_integrals(hcore, eri, nelec, strs_a, strs_b, where)


def solve_direct(
    ci_strs_a: np.ndarray,
    ci_strs_b: np.ndarray,
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    settings: SolverSettings,
    guess: np.ndarray | None = None,
) -> SolveOutput:
    """Davidson (:mod:`hinqs.sqd.davidson`, one rank) on hinqs' kernel (numba, or torch on
    ``settings.device``); energy, residual and <S^2> from the final vector."""

    def operator(strs_a: np.ndarray, strs_b: np.ndarray, mirrored: bool) -> WholeOperator:
        return WholeOperator(_kernel_operator(hcore, eri, nelec, strs_a, strs_b, settings.device), mirrored)

    return solve_on_operator(operator, ci_strs_a, ci_strs_b, hcore.shape[0], nelec, settings, guess)


def _start_vector(op: Any, diagonal: np.ndarray, settings: SolverSettings, guess: np.ndarray | None,
                  nelec: tuple[int, int], norb: int) -> np.ndarray:  # fmt: skip
    """This rank's rows of Davidson's start: the guess (spin-projected when a target <S^2> is set),
    else the determinant of lowest diagonal (first on ties). Collective."""
    from hinqs.sqd.davidson import spin_projected

    space = op.space
    start = op.scatter(guess)
    if start is not None:
        # A copy: the mirror writes in place, and the caller's guess is not the solver's to change.
        start = op.symmetric(np.array(start, dtype=np.float64).reshape(space.local_shape)).ravel()
        if settings.spin_sq is not None:
            start = spin_projected(lambda x: op.apply_spin_square(x.reshape(space.local_shape)).ravel(), start, space,
                                   settings.spin_sq, nelec, norb)  # fmt: skip
        if start is not None and space.norm(start) > 0:
            return start
    index = space.lowest(diagonal)
    start = space.unit(index)
    if op.mirrored:  # the determinant and its spin-swapped partner, alike
        row, column = divmod(index, space.shape[1])
        start += space.unit(column * space.shape[1] + row)
    return start


def _penalised(op: Any, settings: SolverSettings) -> Callable[[np.ndarray], np.ndarray]:
    """Davidson's operator on this rank's rows: H, or H + shift (S^2 - spin_sq) (PySCF's ``fix_spin_``
    penalty) with both products from one exchange of rows."""
    shape = op.space.local_shape

    def apply(x: np.ndarray) -> np.ndarray:
        c = x.reshape(shape)
        if settings.spin_sq is None:
            return op.apply(c).ravel()
        hc, s2c = op.apply_both(c)
        hc += settings.shift * (s2c - settings.spin_sq * c)
        return hc.ravel()

    return apply


def _energy_spin_residual(op: Any, c: np.ndarray, settings: SolverSettings) -> tuple[float, float, float]:
    """E = c.Hc, <S^2> and the residual |A c - (c.A c) c| of Davidson's operator A (H, plus the
    penalty), all from chunk-ordered reductions over the ranks' rows (collective)."""
    space = op.space
    hc, s2c = op.apply_both(c)
    energy, spin_sq = (float(v) for v in space.dots([hc, s2c], c))
    if settings.spin_sq is not None:
        hc = hc + settings.shift * (s2c - settings.spin_sq * c)
        rayleigh = energy + settings.shift * (spin_sq - settings.spin_sq)
    else:
        rayleigh = energy
    return energy, spin_sq, space.norm(hc - rayleigh * c)


def _even_spin(spin_sq: float | None) -> bool:
    """Whether the target <S^2> (None: the lowest state of n_alpha = n_beta, which the spin check
    of :func:`solve` then holds to S = 0) is S(S+1) of an even S: the spins C = C^T spans."""
    if spin_sq is None:
        return True
    spin = spin_of_square(spin_sq)
    return abs(spin - round(spin)) < 0.25 and round(spin) % 2 == 0


def solve_on_operator(
    make_operator: Callable[[np.ndarray, np.ndarray, bool], Any],
    ci_strs_a: np.ndarray,
    ci_strs_b: np.ndarray,
    norb: int,
    nelec: tuple[int, int],
    settings: SolverSettings,
    guess: np.ndarray | None = None,
) -> SolveOutput:
    """``solve_direct`` on the operator ``make_operator(strs_a, strs_b, mirrored)`` builds (int64 strings).

    ``mirrored`` (``sqd.spin_symmetry``, one set of strings and electrons for both spins, a
    target of even spin): the operator computes half of each product and mirrors it
    (``symmetric``), and the start vector is made symmetric, so every Davidson
    vector keeps ``C = C^T`` exactly (each step is elementwise or a linear combination) at
    about half the work per product; otherwise ``symmetric`` leaves vectors as they are.

    The operator holds rows of the vectors: its ``space`` (a :class:`hinqs.sqd.davidson.RowSpace`),
    ``diagonal``, ``apply``, ``apply_both``, ``apply_spin_square`` on its rows, ``scatter``
    (rank 0's whole vector to every rank's rows) and ``gather`` (the reverse): the whole
    one (:class:`WholeOperator`) or one spread over MPI ranks
    (:class:`hinqs.sqd.distributed.SpreadHamiltonian`). The returned state's amplitudes are
    whole on rank 0 (elsewhere an empty array).
    """
    from hinqs.kernel.links import orbital_lists
    from hinqs.sqd.davidson import CONTINUE_FACTOR, davidson
    from hinqs.sqd.progress import DavidsonProgress

    strs_a, strs_b = np.asarray(ci_strs_a).astype(np.int64), np.asarray(ci_strs_b).astype(np.int64)
    # The operator mirrors only where both spins share their strings and electrons (mirrored_spins).
    mirrored = settings.spin_symmetry and _even_spin(settings.spin_sq)
    # The kernel runs on the threads the task was given; Davidson's algebra on one BLAS thread.
    with kernel_on_task_threads():
        op = make_operator(strs_a, strs_b, mirrored)
        space = op.space
        big = space.shape[0] * space.shape[1] >= PROGRESS_DIMENSION
        progress = DavidsonProgress(settings.conv_tol, CONTINUE_FACTOR * settings.max_cycle) if big else None
        diagonal = op.diagonal().ravel()
        if settings.spin_sq is not None:  # the preconditioner sees the penalty too
            local_a = strs_a[space.start : space.stop]
            diagonal = diagonal + settings.shift * (spin_square_diagonal(local_a, strs_b, nelec) - settings.spin_sq)
        # The start vector is passed on, not kept here: the Davidson drops it after one cycle.
        result = davidson(_penalised(op, settings), diagonal, _start_vector(op, diagonal, settings, guess, nelec, norb),
                          space, settings.conv_tol, settings.max_cycle, progress)  # fmt: skip
        if progress is not None:  # the step's log: how many cycles (benchmarks/n2_ccpvdz/table.py reads it)
            print(f"davidson converged={result.converged} after {result.cycles} cycles", flush=True)
        c = result.vector.reshape(space.local_shape)
        energy, spin_sq, residual = _energy_spin_residual(op, c, settings)
        occ_a = orbital_lists(strs_a[space.start : space.stop], norb, nelec[0])[0]
        occ_b = orbital_lists(strs_b, norb, nelec[1])[0]
        weights = space.occupations(c, occ_a, occ_b, norb) / float(space.dots([c], c)[0])
        amplitudes = op.gather(c)
    converged = result.converged and residual < math.sqrt(settings.conv_tol)
    occupancies = (weights[:norb], weights[norb:])
    return _output((strs_a, strs_b), amplitudes, occupancies, energy, spin_sq, converged, residual, settings,
                   continued=True)  # fmt: skip


def spin_square_diagonal(strs_a: np.ndarray, strs_b: np.ndarray, nelec: tuple[int, int]) -> np.ndarray:
    """<D|S^2|D> of every determinant of the product ``strs_a x strs_b``, flattened row by row:
    Sz(Sz + 1) + N_beta - (doubly occupied orbitals).

    The penalised operator's diagonal is H's plus ``shift`` times this (less the target): a
    preconditioner from H's alone is off by half a hartree on the open-shell determinants of
    an antiferromagnet, whose near-zero divisors then make every correction a spike on one
    determinant (measured on [2Fe-2S]: the penalised solve stayed at a residual of 0.40 for
    140 cycles)."""
    sz = 0.5 * (nelec[0] - nelec[1])
    doubly = np.bitwise_count(np.bitwise_and.outer(np.asarray(strs_a, np.uint64), np.asarray(strs_b, np.uint64)))
    return (sz * (sz + 1.0) + nelec[1] - doubly.astype(np.float64)).ravel()


SolverFunction = Callable[..., SolveOutput]
"""``(ci_strs_a, ci_strs_b, hcore, eri, nelec, settings, guess) -> SolveOutput``."""

SOLVER_FUNCTIONS: dict[str, SolverFunction] = {
    "direct": solve_direct,
    "solve_fermion": solve_with_solve_fermion,
    "lean": solve_lean,
}
"""The solvers by registry name (:data:`hinqs.sqd.registry.SOLVERS`)."""


SPIN_TOLERANCE = 0.5  # |<S^2> - S(S+1)| beyond which a state is another spin's root (truncated spaces: ~1e-3)


def solve(
    ci_strs_a: np.ndarray,
    ci_strs_b: np.ndarray,
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    settings: SolverSettings,
    guess: np.ndarray | None = None,
    *,
    function: SolverFunction | None = None,
) -> SolveOutput:
    """Diagonalise one batch subspace with the solver named in ``settings``, from ``guess`` when given.

    ``function`` replaces the named solver's function (the ``distributed`` executor's
    ``direct`` solve spread over MPI ranks), keeping the spin check below.

    A state of another spin than the system's (Davidson can converge to a higher root of
    another spin: C2/6-31G once fell onto a triplet 36 mHa above the singlet) is not handed
    on: the batch is solved again with the ``fix_spin_`` penalty towards S(S+1), starting
    from the previous vector with its other spins projected out (Lowdin's projector,
    :func:`hinqs.sqd.davidson.spin_projected`), or from the lowest-diagonal determinant
    where nothing of the target spin is left in it; the result says so in its warnings.
    """
    function = function or SOLVER_FUNCTIONS[settings.solver]
    out = function(ci_strs_a, ci_strs_b, hcore, eri, nelec, settings, guess)
    target = target_spin_square(nelec)
    if settings.spin_sq is not None or out.spin_sq is None or abs(out.spin_sq - target) <= SPIN_TOLERANCE:
        return out
    from dataclasses import replace

    penalised = replace(settings, spin_sq=target)
    previous = out.state.amplitudes
    if settings.solver != "direct":  # PySCF's Davidson takes the guess as it is: project it here
        previous = _projected_whole(ci_strs_a, ci_strs_b, hcore, eri, nelec, target, previous)
    again = function(ci_strs_a, ci_strs_b, hcore, eri, nelec, penalised, previous)
    note = (
        f"converged to <S^2> = {out.spin_sq:.3f} (E = {out.energy:.8f}) where the system's spin gives "
        f"{target:g}: solved again with the spin penalty from the spin-projected previous vector (the lowest "
        f"diagonal where it held none of that spin), <S^2> = {again.spin_sq:.3f}"
    )
    return replace(again, warnings=[*out.warnings, note, *again.warnings])


def _projected_whole(
    ci_strs_a: np.ndarray,
    ci_strs_b: np.ndarray,
    hcore: np.ndarray,
    eri: np.ndarray,
    nelec: tuple[int, int],
    target: float,
    amplitudes: np.ndarray,
) -> np.ndarray | None:
    """A whole vector with its other spins projected out (S^2 from hinqs' kernel), or None."""
    from hinqs.kernel import ProductHamiltonian
    from hinqs.sqd.davidson import spin_projected

    op = WholeOperator(ProductHamiltonian(hcore, eri, nelec, *(_as_int64(x) for x in (ci_strs_a, ci_strs_b))))
    shape = op.space.local_shape
    flat = np.ascontiguousarray(amplitudes, dtype=np.float64).ravel()
    projected = spin_projected(lambda x: op.apply_spin_square(x.reshape(shape)).ravel(), flat, op.space, target,
                               nelec, hcore.shape[0])  # fmt: skip
    return None if projected is None else projected.reshape(shape)
