"""String excitations and the link tables the row kernels gather over.

A *link table* from sources S to targets T (both sorted int64 CI strings of one spin) lists,
for every target I, the sources J with ``I = E_pq J`` (a single excitation, or ``p = q`` for
an orbital occupied in both) and the sign of ``a+_p a_q`` on J. A *same-spin table* lists the
off-diagonal Slater-Condon elements ``<I|H_sigma|J>`` (one spin's one-body operator and
same-spin two-body operator) over singles and doubles, and the same-spin diagonal of every
target.

Tables are built from the sources' side (each source enumerates its excitations and looks
them up among the targets by bisection), so their cost follows the smaller, variational
set even when the targets are the many strings connected to it, then sorted by target with
a stable counting sort: each target's entries come in source order, fixed whatever the
thread count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numba as nb
import numpy as np


@nb.njit(cache=True, inline="always")
def _below(string: np.int64, orbital: np.int64) -> np.int64:
    """Number of occupied orbitals below ``orbital`` (the fermionic sign's exponent)."""
    x = string & ((np.int64(1) << orbital) - 1)
    count = np.int64(0)
    while x:
        x &= x - 1
        count += 1
    return count


@nb.njit(cache=True, inline="always")
def _find(sorted_strings: np.ndarray, x: np.int64) -> np.int64:
    """Index of ``x`` in ``sorted_strings`` or -1 (bisection)."""
    lo, hi = 0, len(sorted_strings)
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_strings[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(sorted_strings) and sorted_strings[lo] == x:
        return lo
    return -1


@nb.njit(cache=True)
def orbital_lists(strings: np.ndarray, norb: int, nel: int) -> tuple[np.ndarray, np.ndarray]:
    """Occupied and empty orbitals of each string, ascending: arrays (K, nel) and (K, norb - nel)."""
    k = len(strings)
    occ = np.empty((k, nel), np.int64)
    vir = np.empty((k, norb - nel), np.int64)
    for i in range(k):
        a = 0
        b = 0
        for p in range(norb):
            if strings[i] >> p & 1:
                occ[i, a] = p
                a += 1
            else:
                vir[i, b] = p
                b += 1
    return occ, vir


@nb.njit(cache=True)
def same_spin_diagonal(occ: np.ndarray, h1: np.ndarray, eri: np.ndarray) -> np.ndarray:
    """<I|H_sigma|I> of each string: sum h_pp + 1/2 sum_pk [(pp|kk) - (pk|kp)] over its occupied p, k."""
    k, nel = occ.shape
    out = np.zeros(k)
    for i in range(k):
        value = 0.0
        for a in range(nel):
            p = occ[i, a]
            value += h1[p, p]
            for b in range(nel):
                q = occ[i, b]
                value += 0.5 * (eri[p, p, q, q] - eri[p, q, q, p])
        out[i] = value
    return out


@nb.njit(cache=True)
def _count_sort(targets_of: np.ndarray, n_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR pointer by target and the permutation that puts entries in target order (stable)."""
    ptr = np.zeros(n_targets + 1, np.int64)
    for t in targets_of:
        ptr[t + 1] += 1
    for i in range(n_targets):
        ptr[i + 1] += ptr[i]
    fill = ptr[:-1].copy()
    order = np.empty(len(targets_of), np.int64)
    for e in range(len(targets_of)):
        t = targets_of[e]
        order[fill[t]] = e
        fill[t] += 1
    return ptr, order


@nb.njit(cache=True, parallel=True)
def _single_links(sources, occ, vir, targets):
    """Every (target, source, p*norb+q, sign) with target = E_pq source; p = q included."""
    norb = occ.shape[1] + vir.shape[1]
    k, nel = occ.shape
    nvir = vir.shape[1]
    per = nel * (nvir + 1)
    hit = np.full(k * per, -1, np.int64)
    pair = np.empty(k * per, np.int64)
    sign = np.empty(k * per, np.float64)
    for j in nb.prange(k):
        s = sources[j]
        e = j * per
        for a in range(nel):
            q = occ[j, a]
            t = _find(targets, s)
            hit[e] = t
            pair[e] = q * norb + q
            sign[e] = 1.0
            e += 1
            removed = s ^ (np.int64(1) << q)
            n1 = _below(s, q)
            for b in range(nvir):
                p = vir[j, b]
                x = removed | (np.int64(1) << p)
                hit[e] = _find(targets, x)
                pair[e] = p * norb + q
                sign[e] = 1.0 - 2.0 * ((n1 + _below(removed, p)) & 1)
                e += 1
    return hit, pair, sign


@nb.njit(cache=True)
def _one_body_part(q, p, occ_row, h1, eri):
    """h_pq + sum_{k occupied in s, k != q} [(pq|kk) - (pk|kq)]: a same-spin single's element before its sign."""
    value = h1[p, q]
    for c in range(len(occ_row)):
        kk = occ_row[c]
        if kk != q:
            value += eri[p, q, kk, kk] - eri[p, kk, kk, q]
    return value


@nb.njit(cache=True)
def _same_spin_source(s, occ_row, vir_row, targets, h1, eri, out_t, out_v, at, write):
    """The hits of source string ``s`` among the targets: count them, or write them from ``at``.

    Singles first (q -> p), then doubles (q, s2 -> p, r with q < s2, p < r), in a fixed order.
    """
    nel = len(occ_row)
    nvir = len(vir_row)
    e = at
    for a in range(nel):
        q = occ_row[a]
        removed = s ^ (np.int64(1) << q)
        n1 = _below(s, q)
        for b in range(nvir):
            p = vir_row[b]
            t = _find(targets, removed | (np.int64(1) << p))
            if t >= 0:
                if write:
                    sgn = 1.0 - 2.0 * ((n1 + _below(removed, p)) & 1)
                    out_t[e] = t
                    out_v[e] = sgn * _one_body_part(q, p, occ_row, h1, eri)
                e += 1
    for a in range(nel):
        q = occ_row[a]
        for a2 in range(a + 1, nel):
            s2 = occ_row[a2]
            # a+_p a+_r a_s2 a_q |s>, applied right to left: a_q, a_s2, a+_r, a+_p
            m1 = s ^ (np.int64(1) << q)
            m2 = m1 ^ (np.int64(1) << s2)
            n_removed = _below(s, q) + _below(m1, s2)
            for b in range(nvir):
                p = vir_row[b]
                for b2 in range(b + 1, nvir):
                    r = vir_row[b2]
                    m3 = m2 | (np.int64(1) << r)
                    t = _find(targets, m3 | (np.int64(1) << p))
                    if t >= 0:
                        if write:
                            n = n_removed + _below(m2, r) + _below(m3, p)
                            out_t[e] = t
                            out_v[e] = (1.0 - 2.0 * (n & 1)) * (eri[p, q, r, s2] - eri[p, s2, r, q])
                        e += 1
    return e - at


@nb.njit(cache=True, parallel=True)
def _same_spin_entries(sources, occ, vir, targets, h1, eri):
    """Every off-diagonal (target, source, <target|H_sigma|source>) over same-spin singles and doubles.

    Two passes (count, then fill at each source's offset): memory follows the hits, not the
    (many more) excitations tried.
    """
    k = len(sources)
    empty_t = np.empty(0, np.int64)
    empty_v = np.empty(0, np.float64)
    counts = np.zeros(k + 1, np.int64)
    for j in nb.prange(k):
        counts[j + 1] = _same_spin_source(sources[j], occ[j], vir[j], targets, h1, eri, empty_t, empty_v, 0, False)
    offsets = np.cumsum(counts)
    out_t = np.empty(offsets[-1], np.int64)
    out_v = np.empty(offsets[-1], np.float64)
    for j in nb.prange(k):
        _same_spin_source(sources[j], occ[j], vir[j], targets, h1, eri, out_t, out_v, offsets[j], True)
    source_of = np.empty(offsets[-1], np.int64)
    for j in range(k):
        source_of[offsets[j] : offsets[j + 1]] = j
    return out_t, source_of, out_v


@nb.njit(cache=True)
def _compact(hit, per, n_targets):
    """Keep the entries that hit a target; return (target, source, position) in source order, sorted by target."""
    keep = np.flatnonzero(hit >= 0)
    targets_of = hit[keep]
    source_of = keep // per
    ptr, order = _count_sort(targets_of, n_targets)
    return ptr, source_of[order], keep[order]


@dataclass(frozen=True)
class LinkTable:
    """Single-excitation links by target (CSR): ``ptr``, ``source``, ``pair`` (p*norb+q), ``sign``."""

    ptr: np.ndarray
    source: np.ndarray
    pair: np.ndarray
    sign: np.ndarray

    @property
    def count(self) -> int:
        return len(self.source)


@dataclass(frozen=True)
class SameSpinTable:
    """One spin's off-diagonal same-spin Hamiltonian by target (CSR) and the targets' diagonal."""

    ptr: np.ndarray
    source: np.ndarray
    value: np.ndarray
    diagonal: np.ndarray


class SideTables(NamedTuple):
    """One spin side of a product as the row kernels read it (:mod:`hinqs.kernel.rows`), by target
    string: a named tuple, which numba passes into its kernels as one argument."""

    ident: np.ndarray  # the target's index among the sources, -1 when it is not one
    hptr: np.ndarray  # same-spin Hamiltonian (CSR by target): row pointers,
    hsrc: np.ndarray  # source strings,
    hval: np.ndarray  # values,
    hdiag: np.ndarray  # and the targets' same-spin diagonal
    lptr: np.ndarray  # single-excitation links (CSR by target): row pointers,
    lsrc: np.ndarray  # source strings,
    lpair: np.ndarray  # orbital pair p * norb + q,
    lsign: np.ndarray  # and fermionic sign

    @classmethod
    def of(cls, ident: np.ndarray, same: SameSpinTable, links: LinkTable) -> SideTables:
        return cls(ident, same.ptr, same.source, same.value, same.diagonal, links.ptr, links.source, links.pair,
                   links.sign)  # fmt: skip


def single_links(sources: np.ndarray, targets: np.ndarray, norb: int, nel: int) -> LinkTable:
    """Links ``target = E_pq source`` (diagonal p = q included) between two sorted string sets."""
    occ, vir = orbital_lists(sources, norb, nel)
    hit, pair, sign = _single_links(sources, occ, vir, targets)
    ptr, source, position = _compact(hit, nel * (norb - nel + 1), len(targets))
    return LinkTable(ptr, source, pair[position], sign[position])


def same_spin_table(
    sources: np.ndarray, targets: np.ndarray, norb: int, nel: int, h1: np.ndarray, eri: np.ndarray
) -> SameSpinTable:
    """The same-spin Hamiltonian from ``sources`` into ``targets`` (off-diagonal) and the targets' diagonal."""
    occ, vir = orbital_lists(sources, norb, nel)
    target_of, source_of, value = _same_spin_entries(sources, occ, vir, targets, h1, eri)
    ptr, order = _count_sort(target_of, len(targets))
    target_occ, _ = orbital_lists(targets, norb, nel)
    return SameSpinTable(ptr, source_of[order], value[order], same_spin_diagonal(target_occ, h1, eri))
