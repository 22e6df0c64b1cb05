"""Device memory of the torch product-space kernel: what a batch needs, and the refusal when it does not fit.

The torch kernel (:mod:`hinqs.kernel.torch_kernel`) keeps on its device the batch's tables
(the integrals' columns it gathers, the padded link tables, the two same-spin Hamiltonians
as dense matrices), the vectors of one product (``C``, ``sigma`` and the two same-spin
products) and the intermediates of one chunk of alpha rows. Davidson's trial and sigma
vectors stay on the host (PySCF's ``lib.davidson1`` runs in NumPy), so they count against
the host memory :mod:`hinqs.sqd.dimension` checks, not against the device.

Everything here follows from the product's shape, ``norb`` and ``nelec`` alone, with the
link counts bounded from above (``nel (norb - nel + 1)`` singles and diagonal links per
string, and never more than there are sources), so a batch is checked before any table is
built. The same :func:`row_bytes` sizes the kernel's chunks, so the estimate and the kernel
agree on what a chunk holds.

No torch import: the estimate and the check run wherever the caller is.
"""

from __future__ import annotations

from dataclasses import dataclass

from hinqs.errors import InputError

# The chunk intermediates' budget by device type. Fixed, not taken from the device's free
# memory, because the chunking decides the shapes of the batched matrix products and so (on a
# GPU, through cuBLAS's choice of kernel) the bits of the result: one batch gives the same bits
# on any device of a kind, whatever else it holds. On a GPU large chunks keep the batched GEMMs
# busy; on a CPU chunks that stay in cache are faster (measured at 400 strings per spin, one
# thread: 0.36 s per H C at 16 MB, 0.95 s at 64 MB, 2.1 s at 1 GB).
WORK_MB = {"cuda": 1024.0, "cpu": 16.0}
# Share of the device's free memory a batch may plan to use: the rest covers the caching
# allocator's fragmentation and cuBLAS's workspace.
USABLE_FRACTION = 0.9
_F8 = 8  # bytes of a float64 or an int64


def max_links(norb: int, nel: int, n_sources: int) -> int:
    """An upper bound on the single-excitation links (diagonal included) into one target string.

    A string has ``nel (norb - nel)`` singles plus ``nel`` diagonal links; another source
    reaches a given target through at most one pair ``pq``, the target itself (when it is a
    source) through its ``nel`` diagonal ones.
    """
    return max(0, min(nel * (norb - nel + 1), n_sources - 1 + nel))


def row_bytes(alpha_links: int, pairs: int, beta_sources: int, beta_targets: int, beta_links: int) -> int:
    """Bytes one alpha target row occupies in a chunk of the opposite-spin product.

    ``E`` (alpha links x pairs), ``A`` (alpha links x beta sources), their product ``T``
    (pairs x beta sources), the gathered ``T`` at the beta links and its signed copy
    (2 x beta targets x beta links), and the row of the result.
    """
    la, lb = alpha_links, beta_links
    per_row = la * pairs + la * beta_sources + pairs * beta_sources + 2 * beta_targets * lb + beta_targets
    return _F8 * per_row


@dataclass(frozen=True)
class DeviceNeed:
    """Device memory (MB) of one batch's torch kernel, by what holds it."""

    tables_mb: float
    vectors_mb: float
    work_mb: float

    @property
    def total_mb(self) -> float:
        return self.tables_mb + self.vectors_mb + self.work_mb

    def describe(self) -> str:
        return (
            f"about {self.total_mb:,.0f} MB (tables {self.tables_mb:,.0f}, vectors {self.vectors_mb:,.0f}, "
            f"chunk work {self.work_mb:,.0f})"
        )


def _tables_and_row(
    sources: tuple[int, int], targets: tuple[int, int], norb: int, nelec: tuple[int, int]
) -> tuple[int, int]:
    """The operator's tables on the device (float64 words) and one chunk row's bytes."""
    sa, sb = sources
    ta, tb = targets
    la, lb = max_links(norb, nelec[0], sa), max_links(norb, nelec[1], sb)
    pairs = norb * norb
    tables = 2 * pairs * pairs  # the integrals' gathered columns, and S^2's
    tables += ta * (3 * la + 1) + 2 * tb * lb  # padded links: row, source, pair, sign / flat index, sign
    tables += 2 * (ta + tb)  # the targets that are sources, and their source indices
    tables += ta * sa + tb * sb  # the dense same-spin Hamiltonians
    return tables, row_bytes(la, pairs, sb, tb, lb)


def _need(tables: int, vectors: int, per_row: int, rows: int, work_mb: float) -> DeviceNeed:
    work = min(rows * per_row, max(work_mb * 2**20, per_row))  # a chunk fills the budget, or holds one row
    mb = 1.0 / 2**20
    return DeviceNeed(tables * _F8 * mb, vectors * _F8 * mb, work * mb)


def device_need(
    sources: tuple[int, int], targets: tuple[int, int], norb: int, nelec: tuple[int, int], work_mb: float
) -> DeviceNeed:
    """An upper estimate of the device memory the torch kernel holds for one product.

    ``sources`` and ``targets`` are the (alpha, beta) string counts (equal for a batch's
    square Davidson operator).
    """
    tables, per_row = _tables_and_row(sources, targets, norb, nelec)
    vectors = sources[0] * sources[1] + 3 * targets[0] * targets[1]  # C, sigma and the two same-spin products
    return _need(tables, vectors, per_row, targets[0], work_mb)


def pt2_device_need(
    sources: tuple[int, int], targets: tuple[int, int], norb: int, nelec: tuple[int, int], work_mb: float
) -> DeviceNeed:
    """The same estimate for the PT2's rows (``TorchPT2Rows``): the tables,
    C, the sources' rows of ``C H_bb^T`` over every beta target, the diagonal's Coulomb rows and
    occupations, and one chunk of rows (its products and terms), never the connected product."""
    tables, per_row = _tables_and_row(sources, targets, norb, nelec)
    sa, sb = sources
    ta, tb = targets
    vectors = sa * sb + sa * tb + norb * (ta + tb)
    return _need(tables, vectors, per_row + 4 * tb * _F8, ta, work_mb)


def check_device_fits(shape: tuple[int, int], need: DeviceNeed, free_mb: float, device: str, source: str) -> None:
    """One-line :class:`InputError` when a batch's ``need`` exceeds the usable share of ``free_mb``.

    The line names the batch's shape, what it needs, what the device has and where that figure
    came from, so that a user can tell a small GPU from a too-large batch without a traceback.
    """
    usable = USABLE_FRACTION * free_mb
    if need.total_mb <= usable:
        return
    ka, kb = shape
    raise InputError(
        f"{ka} x {kb} = {ka * kb:,} determinants need {need.describe()} of device memory on {device}, "
        f"but it has {free_mb:,.0f} MB free ({source}; {USABLE_FRACTION:g} of it usable); lower "
        "sqd.samples_per_batch or sqd.max_dimension, or solve on the host with sqd.device: cpu"
    )
