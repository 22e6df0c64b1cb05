"""Every single (and double) same-spin excitation of many strings, compiled, a block of parents at a time.

The expansion draws candidates from the excitations of a state's heaviest strings; the PT2
needs the strings H connects to a state's strings and each one's parent weight, the summed
weight of the strings it is excited from. At 2,800 strings per spin of 26 orbitals those are
6 M excitations: built as Python integers and sorted whole, they took 8.5 s and 400 MB per
spin. Here numba enumerates them parent by parent in a fixed order (singles, then doubles), a
block of parents at a time; the weights take a second pass, added in parent order, which is
the order ``np.bincount`` adds them in over the whole list, so the same bits.
"""

from __future__ import annotations

import numba as nb
import numpy as np

PARENTS_PER_BLOCK = 256  # parents excited at a time: their excitations are a few MB


@nb.njit(cache=True)
def _count(norb: int, nel: int, doubles: bool) -> int:
    """Singles (and doubles) of one string of ``nel`` electrons in ``norb`` orbitals."""
    vir = norb - nel
    return nel * vir + ((nel * (nel - 1) // 2) * (vir * (vir - 1) // 2) if doubles else 0)


@nb.njit(cache=True)
def _excite_block(parents: np.ndarray, norb: int, nel: int, doubles: bool) -> np.ndarray:
    """The excitations of each parent, parent after parent, each in one order: singles (occupied
    i ascending, then virtual a ascending), then (``doubles``) doubles (occupied pairs i < j in
    order, each with every virtual pair a < b in order)."""
    per = _count(norb, nel, doubles)
    out = np.empty(len(parents) * per, np.uint64)
    occ = np.empty(nel, np.int64)
    vir = np.empty(norb - nel, np.int64)
    at = 0
    one = np.uint64(1)
    for parent in parents:
        n_occ = 0
        n_vir = 0
        for orbital in range(norb):
            if (parent >> np.uint64(orbital)) & one:
                occ[n_occ] = orbital
                n_occ += 1
            else:
                vir[n_vir] = orbital
                n_vir += 1
        for i in occ:
            for a in vir:
                out[at] = parent ^ ((one << np.uint64(i)) | (one << np.uint64(a)))
                at += 1
        if not doubles:
            continue
        for x in range(nel):
            for y in range(x + 1, nel):
                holes = (one << np.uint64(occ[x])) | (one << np.uint64(occ[y]))
                for u in range(norb - nel):
                    for v in range(u + 1, norb - nel):
                        out[at] = parent ^ (holes | (one << np.uint64(vir[u])) | (one << np.uint64(vir[v])))
                        at += 1
    return out


@nb.njit(cache=True)
def _add_in_order(mass: np.ndarray, index: np.ndarray, weights: np.ndarray, per: int) -> None:
    """``mass[index[e]] += weights[e // per]`` for every excitation ``e`` in order (bincount's order)."""
    for e in range(len(index)):
        mass[index[e]] += weights[e // per]


def _blocks(strings: np.ndarray, norb: int, doubles: bool):
    """Each block of parents' excitations, in parent order, with the block's first parent."""
    nel = int(strings[0]).bit_count()
    for start in range(0, len(strings), PARENTS_PER_BLOCK):
        yield start, _excite_block(strings[start : start + PARENTS_PER_BLOCK], norb, nel, doubles)


def excited(strings: np.ndarray, norb: int, *, doubles: bool = True) -> np.ndarray:
    """The distinct single (and double) excitations of ``strings``, sorted (uint64; the strings
    themselves included where they are excitations of others)."""
    strings = np.asarray(strings, dtype=np.uint64)
    found = np.zeros(0, np.uint64)
    if len(strings):
        for _, block in _blocks(strings, norb, doubles):
            found = np.union1d(found, block)
    return found


def excitation_weights(strings: np.ndarray, weight: np.ndarray, norb: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`excited` (singles and doubles) and each one's summed parent ``weight``: ``np.unique``
    and ``np.bincount`` over every excitation, to the last bit."""
    strings = np.asarray(strings, dtype=np.uint64)
    weight = np.asarray(weight, dtype=np.float64)
    found = excited(strings, norb)
    mass = np.zeros(len(found))
    if len(strings):
        per = int(_count(norb, int(strings[0]).bit_count(), True))
        for start, block in _blocks(strings, norb, True):
            _add_in_order(mass, np.searchsorted(found, block), weight[start : start + PARENTS_PER_BLOCK], per)
    return found, mass
