"""The numba row kernels: one output row of H C over chosen columns, by one thread, in a fixed order.

Each spin side of a product is described by its named tables over its *target* strings
(:class:`hinqs.kernel.links.SideTables`): ``ident`` maps a target to its index
among the sources (-1 when it is not one), ``h*`` is the same-spin table
(:class:`hinqs.kernel.links.SameSpinTable`) and ``l*`` the single-excitation links
(:class:`hinqs.kernel.links.LinkTable`). ``C`` is the coefficient matrix over sources.

The element of row ``x`` (alpha target) and column ``y`` (beta target)::

    [x, y both sources] (hdiag_a[x] + hdiag_b[y]) C[x, y]
    + [y a source]  sum_{alpha same-spin J -> x} v C[J, y]
    + [x a source]  sum_{beta same-spin J' -> y} v C[x, J']
    + sum_{alpha links (J, pq, s)} s sum_{beta links (J', rs, s')} s' (pq|rs) C[J, J']

summed in that order, terms in table order: the result does not depend on how rows are
shared among threads.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, inline="always")
def _dot(e_t, rs, a_t, j, n):
    """``sum_k e_t[rs, k] a_t[j, k]`` over ``n`` entries with four running sums, combined in a fixed order."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    k = 0
    while k + 4 <= n:
        s0 += e_t[rs, k] * a_t[j, k]
        s1 += e_t[rs, k + 1] * a_t[j, k + 1]
        s2 += e_t[rs, k + 2] * a_t[j, k + 2]
        s3 += e_t[rs, k + 3] * a_t[j, k + 3]
        k += 4
    while k < n:
        s0 += e_t[rs, k] * a_t[j, k]
        k += 1
    return (s0 + s1) + (s2 + s3)


@nb.njit(cache=True)
def _link_rows(x, c_mat, eri2, a):
    """Row ``x``'s alpha links gathered: ``E[rs, k] = s_k (pq_k|rs)`` and ``A[J', k] = C[J_k, J']``."""
    first, last = a.lptr[x], a.lptr[x + 1]
    n_links = last - first
    e_t = np.empty((eri2.shape[1], n_links))
    a_t = np.empty((c_mat.shape[1], n_links))
    for k in range(n_links):
        erow = eri2[a.lpair[first + k]]
        sign = a.lsign[first + k]
        for rs in range(eri2.shape[1]):
            e_t[rs, k] = sign * erow[rs]
        crow = c_mat[a.lsrc[first + k]]
        for j in range(c_mat.shape[1]):
            a_t[j, k] = crow[j]
    return e_t, a_t


@nb.njit(cache=True)
def _link_sum(y, e_t, a_t, b):
    """Element ``y`` of the row whose links gave ``e_t``, ``a_t``: its beta links in table order."""
    acc = 0.0
    for m in range(b.lptr[y], b.lptr[y + 1]):
        acc += b.lsign[m] * _dot(e_t, b.lpair[m], a_t, b.lsrc[m], e_t.shape[1])
    return acc


@nb.njit(cache=True)
def _opposite_spin(x, cols, out, c_mat, eri2, a, b):
    """Add ``sum_{alpha links k} s_k sum_{beta links m} s_m (pq_k|rs_m) C[J_k, J'_m]`` to ``out``.

    For one row the alpha links are few (about 40 at 26 orbitals), so they go innermost:
    ``E[rs, k] = s_k (pq_k|rs)`` and ``A[J', k] = C[J_k, J']`` are gathered once per row, and
    each beta link adds ``s_m E[rs_m] . A[J'_m]``, a contiguous dot product. Every element
    is summed over its links in table order: one fixed order whatever the thread count.
    """
    if a.lptr[x + 1] == a.lptr[x]:
        return
    e_t, a_t = _link_rows(x, c_mat, eri2, a)
    for i in range(len(cols)):
        out[i] += _link_sum(cols[i], e_t, a_t, b)


@nb.njit(cache=True)
def fill_row(x, cols, col_src, src_pos, out, c_mat, eri2, a, b, same_spin):
    """``out[i] = (H C)[x, cols[i]]``; ``col_src[i]`` is column ``cols[i]``'s source index or -1,
    ``src_pos`` the positions ``i`` whose column is a source (the only ones the alpha
    same-spin part reaches: a PT2 row meets tens of thousands of external columns).

    ``same_spin`` False leaves out the same-spin tables and
    diagonals: what the S^2 operator (an opposite-spin sum only) uses with its own
    "integrals" in ``eri2``.
    """
    ncol = len(cols)
    ia = a.ident[x]
    for i in range(ncol):
        out[i] = 0.0
    if same_spin:
        if ia >= 0:
            own = c_mat[ia]
            for i in range(ncol):
                y = cols[i]
                v = 0.0
                if col_src[i] >= 0:
                    v = (a.hdiag[x] + b.hdiag[y]) * own[col_src[i]]
                for m in range(b.hptr[y], b.hptr[y + 1]):
                    v += b.hval[m] * own[b.hsrc[m]]
                out[i] = v
        for k in range(a.hptr[x], a.hptr[x + 1]):
            value = a.hval[k]
            row = c_mat[a.hsrc[k]]
            for i in src_pos:
                out[i] += value * row[col_src[i]]
    _opposite_spin(x, cols, out, c_mat, eri2, a, b)


@nb.njit(cache=True, parallel=True)
def product(c_mat, eri2, a, b, n_rows, cols, col_src, same_spin):
    """The dense product: every target row against the columns ``cols``."""
    out = np.empty((n_rows, len(cols)))
    src_pos = np.flatnonzero(col_src >= 0)
    for x in nb.prange(n_rows):
        fill_row(x, cols, col_src, src_pos, out[x], c_mat, eri2, a, b, same_spin)
    return out


@nb.njit(cache=True, parallel=True)
def same_spin_rows(c_mat, hptr, hsrc, hval, n_rows):
    """``out[x] = sum_J H_sigma[x, J] C[J]`` (off-diagonal same-spin part, whole rows: vectorised axpys)."""
    out = np.zeros((n_rows, c_mat.shape[1]))
    for x in nb.prange(n_rows):
        for k in range(hptr[x], hptr[x + 1]):
            out[x] += hval[k] * c_mat[hsrc[k]]
    return out


@nb.njit(cache=True)
def half_width(g, n):
    """How many columns past its diagonal row ``g`` of a mirrored ``n x n`` product computes.

    Row ``g`` computes the columns ``g, g + 1, ..., g + H`` cyclically (mod ``n``): half the row
    whatever ``g`` is, so rows cost alike and a split by rows splits work and memory alike.
    Every element off the diagonal is computed by exactly one of its row and its column's row:
    for odd ``n``, ``H = (n - 1) / 2``; for even ``n`` the element at distance ``n / 2`` is
    computed by whichever of the two rows lies in the first half."""
    if n % 2 == 1:
        return (n - 1) // 2
    return n // 2 if g < n // 2 else n // 2 - 1


@nb.njit(cache=True)
def _window(i, n, upper_from):
    """The columns row ``i`` of a block computes, as ``[lo, hi)`` and ``[0, wrap)``: all of them when
    ``upper_from < 0``, else (the block's first global row is ``upper_from``) its cyclic window."""
    if upper_from < 0:
        return 0, n, 0
    g = upper_from + i
    end = g + half_width(g, n) + 1
    return g, min(end, n), max(0, end - n)


@nb.njit(cache=True)
def computes(g, y, n):
    """Whether row ``g`` of a mirrored ``n x n`` product computes column ``y`` (:func:`half_width`)."""
    return (y - g) % n <= half_width(g, n)


@nb.njit(cache=True)
def _diagonal_and_links(x, row, lo, hi, wrap, c_mat, eri2, a, b, with_diagonal):
    """Row ``x`` over its columns ``[lo, hi)`` and ``[0, wrap)``: the diagonal term (``with_diagonal``)
    then the opposite-spin sum; the other columns zero (the mirror's to fill, not whatever
    memory held)."""
    row[:] = 0.0
    if with_diagonal:
        for y in range(lo, hi):
            row[y] = (a.hdiag[x] + b.hdiag[y]) * c_mat[x, y]
        for y in range(wrap):
            row[y] = (a.hdiag[x] + b.hdiag[y]) * c_mat[x, y]
    if a.lptr[x + 1] > a.lptr[x]:
        e_t, a_t = _link_rows(x, c_mat, eri2, a)
        for y in range(lo, hi):
            row[y] += _link_sum(y, e_t, a_t, b)
        for y in range(wrap):
            row[y] += _link_sum(y, e_t, a_t, b)


@nb.njit(cache=True)
def _opposite_row(i, out, c_mat, eri2, a, b, with_diagonal, start, upper_from):
    lo, hi, wrap = _window(i, c_mat.shape[1], upper_from)
    _diagonal_and_links(start + i, out[i], lo, hi, wrap, c_mat, eri2, a, b, with_diagonal)


@nb.njit(cache=True, parallel=True)
def square_opposite(c_mat, eri2, a, b, with_diagonal, start, stop, upper_from=-1):
    """Rows ``start:stop`` of the square product's opposite-spin sum, plus (``with_diagonal``)
    the same-spin diagonals. Each row is summed alone, so a block of rows (one MPI rank's
    share) has the bits those rows have in the whole product. ``upper_from >= 0``: only each
    row's window of columns (:func:`half_width`; row ``i`` is global row ``upper_from + i``);
    the others are zero, for :func:`mirror_block` to fill."""
    n_rows = stop - start
    out = np.empty((n_rows, c_mat.shape[1]))
    for i in nb.prange(n_rows):
        _opposite_row(i, out, c_mat, eri2, a, b, with_diagonal, start, upper_from)
    return out


@nb.njit(cache=True, parallel=True)
def mirror_block(out, start):
    """``out[i, y] = out[y - start, start + i]`` for the columns ``y`` of the block's own rows
    ``[start, start + rows)`` that row ``start + i`` does not compute (:func:`computes`): the
    block's own square made symmetric from the elements its rows computed (the whole matrix
    when ``start`` is 0 and the block holds every row; other columns come from other blocks,
    :func:`fill_transposed`)."""
    n = out.shape[1]
    for i in nb.prange(out.shape[0]):
        g = start + i
        for y in range(start, start + out.shape[0]):
            if not computes(g, y, n):
                out[i, y] = out[y - start, g]


@nb.njit(cache=True, parallel=True)
def fill_transposed(out, block, start, other_start):
    """Into this block's rows (global ``start + i``), the columns ``other_start + j`` they do not
    compute, from ``block[j, i]``: another block's rows at this block's columns (transposed)."""
    n = out.shape[1]
    for i in nb.prange(out.shape[0]):
        g = start + i
        for j in range(block.shape[0]):
            y = other_start + j
            if not computes(g, y, n):
                out[i, y] = block[j, i]


@nb.njit(cache=True, parallel=True)
def diagonal(a_hdiag, b_hdiag, a_jvec, b_occ):
    """H's diagonal over targets: hdiag_a[x] + hdiag_b[y] + sum_{p in x, r in y} (pp|rr).

    ``a_jvec[x, r] = sum_{p in x} (pp|rr)``; ``b_occ`` the beta targets' occupied orbitals.
    """
    n_a, n_b = len(a_hdiag), len(b_hdiag)
    out = np.empty((n_a, n_b))
    for x in nb.prange(n_a):
        for y in range(n_b):
            cross = 0.0
            for c in range(b_occ.shape[1]):
                cross += a_jvec[x, b_occ[y, c]]
            out[x, y] = a_hdiag[x] + b_hdiag[y] + cross
    return out


@nb.njit(cache=True)
def _pt2_terms(x, cols, out, b_hdiag, a_jvec, b_occ, w_b, base, e_var, paired):
    """Sum over the columns of one row of w_b[y] <xy|H|Psi>^2 / (E - H_xy,xy), how many terms, and
    how many connected determinants lie below E (H_xy,xy < E: left out of the sum, whose
    Epstein-Nesbet denominator would turn the term's sign; they belong in the space).
    ``paired``: each column other than ``y = x`` stands for the pair (x, y), (y, x) (counted twice)."""
    total = 0.0
    count = 0
    below = 0
    for i in range(len(cols)):
        v = out[i]
        if v == 0.0:
            continue
        y = cols[i]
        times = 2 if paired and y != x else 1
        cross = 0.0
        for c in range(b_occ.shape[1]):
            cross += a_jvec[x, b_occ[y, c]]
        denominator = e_var - (base + b_hdiag[y] + cross)
        if denominator > 1e-10:
            below += times
        elif denominator < -1e-10:
            total += times * (w_b[y] * v * v / denominator)
            count += times
    return total, count, below


@nb.njit(cache=True)
def _pair_columns(x, cols, src, order):
    """The columns of row ``x`` that stand for their pair: ``order[y] >= order[x]``, with their
    sources and the positions among them of the source columns."""
    keep = np.empty(len(cols), np.bool_)
    for i in range(len(cols)):
        keep[i] = order[cols[i]] >= order[x]
    picked, picked_src = cols[keep], src[keep]
    return picked, picked_src, np.flatnonzero(picked_src >= 0)


@nb.njit(cache=True, parallel=True)
def pt2_rows(c_mat, eri2, a, b, a_jvec, b_occ, w_b, e_var, col_sets, rows, order):
    """For each alpha target row in ``rows``, the EN-PT2 sum over its external determinants
    (columns weighted by ``w_b``), the number of terms, and the number of connected external
    determinants whose diagonal lies below ``e_var`` (not summed: :func:`_pt2_terms`).

    ``col_sets`` = (external columns, source columns + linked external columns, source
    columns), each with its columns' source indices: a source row meets only external
    columns; an external row with single links meets the source columns and the external
    columns that have links too; an external row without single links (a double of the
    subspace) only the source columns. Every other element is zero.

    ``order`` (empty: every column): a rank of every target string, for a symmetric state
    over one string set (the terms of (x, y) and (y, x) are equal): row ``x`` then sums only
    the columns ranked at or above its own, each standing for its pair, so the rows still
    partition the whole sum at half the columns (a rank that is a pseudo-random permutation
    gives every row about half of its columns, not the first rows all of theirs).
    """
    ext_cols, ext_src, linked_cols, linked_src, in_cols, in_src = col_sets
    ext_pos = np.flatnonzero(ext_src >= 0)
    linked_pos = np.flatnonzero(linked_src >= 0)
    in_pos = np.flatnonzero(in_src >= 0)
    b_hdiag = b.hdiag
    paired = len(order) > 0
    sums = np.zeros(len(rows))
    counts = np.zeros(len(rows), np.int64)
    below = np.zeros(len(rows), np.int64)
    for r in nb.prange(len(rows)):
        x = rows[r]
        if a.ident[x] >= 0:
            cols, src, pos = ext_cols, ext_src, ext_pos
        elif a.lptr[x + 1] > a.lptr[x]:
            cols, src, pos = linked_cols, linked_src, linked_pos
        else:
            cols, src, pos = in_cols, in_src, in_pos
        if paired:
            cols, src, pos = _pair_columns(x, cols, src, order)
        if len(cols) == 0:
            continue
        out = np.empty(len(cols))
        fill_row(x, cols, src, pos, out, c_mat, eri2, a, b, True)
        total, count, lower = _pt2_terms(x, cols, out, b_hdiag, a_jvec, b_occ, w_b, a.hdiag[x], e_var, paired)
        sums[r] = total
        counts[r] = count
        below[r] = lower
    return sums, counts, below


SAME_SPIN_TILE = 128  # columns an alpha same-spin pass reads of C's rows at a time: every row's tile fits the L3


@nb.njit(cache=True)
def _alpha_same_spin(c_mat, a, out, x0, x1, upper_from):
    """Add rows ``x0:x1``'s alpha same-spin parts, each element summed alone from zero in table
    order, then added. Column tile by column tile (:data:`SAME_SPIN_TILE`): the rows of ``C``
    the entries read are then a tile's width, which stays in the cache for the next rows,
    instead of whole rows streamed from memory for every row (2.8x at 2,800 strings per spin).
    The sums run over slices (indices that cannot be negative): LLVM vectorises those loops,
    not ones indexed ``start + i`` (measured 2.4x)."""
    n = c_mat.shape[1]
    buf = np.empty(SAME_SPIN_TILE)
    for t0 in range(0, n, SAME_SPIN_TILE):
        t1 = min(n, t0 + SAME_SPIN_TILE)
        for x in range(x0, x1):
            lo, hi, wrap = _window(x, n, upper_from)
            for s, e in ((max(lo, t0), min(hi, t1)), (t0, min(wrap, t1))):
                if s >= e:
                    continue
                m = e - s
                for i in range(m):
                    buf[i] = 0.0
                for k in range(a.hptr[x], a.hptr[x + 1]):
                    value = a.hval[k]
                    source = c_mat[a.hsrc[k]][s:e]
                    for i in range(m):
                        buf[i] += value * source[i]
                target = out[x][s:e]
                for i in range(m):
                    target[i] += buf[i]


@nb.njit(cache=True)
def _computed(r0, r, y, n, upper_from):
    """Whether row ``r0 + r`` of a block computes column ``y`` (its window, or every column)."""
    return upper_from < 0 or computes(upper_from + r0 + r, y, n)


@nb.njit(cache=True)
def _beta_same_spin(r0, out, c_mat, b, upper_from):
    """Add the beta same-spin parts of rows ``r0 : r0 + 8`` (fewer at the end): element ``(x, y)``
    sums column ``y``'s entries over ``C[x]`` alone from zero in table order, then is added
    (where row ``x`` computes ``y``). Eight rows share each read of a column's entries, and
    their eight sums are independent chains the core runs side by side (one row's sum is a
    chain of dependent adds: 2x slower)."""
    n = c_mat.shape[1]
    rows = min(8, out.shape[0] - r0)
    last = r0 + rows - 1  # a short block reads its last row again in the missing places, unused
    c0, c1, c2, c3 = c_mat[r0], c_mat[min(r0 + 1, last)], c_mat[min(r0 + 2, last)], c_mat[min(r0 + 3, last)]
    c4, c5, c6, c7 = c_mat[min(r0 + 4, last)], c_mat[min(r0 + 5, last)], c_mat[min(r0 + 6, last)], c_mat[last]
    for y in range(n):
        wanted = False
        for r in range(rows):
            wanted = wanted or _computed(r0, r, y, n, upper_from)
        if not wanted:
            continue
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        for k in range(b.hptr[y], b.hptr[y + 1]):
            value = b.hval[k]
            j = b.hsrc[k]
            s0 += value * c0[j]
            s1 += value * c1[j]
            s2 += value * c2[j]
            s3 += value * c3[j]
            s4 += value * c4[j]
            s5 += value * c5[j]
            s6 += value * c6[j]
            s7 += value * c7[j]
        sums = (s0, s1, s2, s3, s4, s5, s6, s7)
        for r in range(rows):
            if _computed(r0, r, y, n, upper_from):
                out[r0 + r, y] += sums[r]


@nb.njit(cache=True, parallel=True)
def square_rows(c_mat, eri2, a, b, n_rows, upper_from, chunks):
    """Rows ``0:n_rows`` of the square product ``H C``, each element summed as
    :meth:`ProductHamiltonian.apply_rows` sums it, without its whole-block temporaries.

    Element ``(x, y)`` is the diagonal term, plus the opposite-spin sum, plus the alpha
    same-spin part (summed alone from zero), plus the beta same-spin part (likewise): the
    same sums in the same order as ``square_opposite`` + ``same_spin_rows`` over the alpha
    table + ``same_spin_rows`` of the transposed block over the beta table, so the same
    bits, at any thread count. The three passes are laid out for the memory, not the
    arithmetic (:func:`_alpha_same_spin`, :func:`_beta_same_spin`): the same-spin parts, 40 %
    of a product at 2,800 strings per spin before, take about half as long.
    ``upper_from >= 0``: each row over its window only (:func:`square_opposite`), the same
    bits there; -1: every column. ``chunks``: the threads (numba's count, which a compiled
    function cannot read and still be cached), one contiguous run of rows each for the
    alpha pass.
    """
    n = c_mat.shape[1]
    out = np.empty((n_rows, n))
    for x in nb.prange(n_rows):
        lo, hi, wrap = _window(x, n, upper_from)
        _diagonal_and_links(x, out[x], lo, hi, wrap, c_mat, eri2, a, b, True)
    for chunk in nb.prange(chunks):
        _alpha_same_spin(c_mat, a, out, chunk * n_rows // chunks, (chunk + 1) * n_rows // chunks, upper_from)
    for block in nb.prange((n_rows + 7) // 8):
        _beta_same_spin(8 * block, out, c_mat, b, upper_from)
    return out
