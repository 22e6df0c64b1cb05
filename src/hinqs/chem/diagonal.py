"""Single determinants ranked by their diagonal energy <D|H|D>: the loop's first references.

The aufbau determinant in the file's orbital order is a poor start where the orbitals are
localized (an FCIDUMP of a metal cluster: the first 15 of 20 orbitals doubly occupied puts
both iron d shells' electrons in pairs) or where bonds are stretched. A determinant's
diagonal energy is a quadratic function of its occupation vectors, so every single
excitation's change is one array expression and a greedy descent over them costs
microseconds per step. Candidates come from :mod:`hinqs.chem.mean_field` (the occupied
sets of converged SCF solutions, rounded to the orbital basis of the integrals) and from
broken-symmetry splits; the descent polishes each to a local minimum.

Determinants are pairs of occupation vectors (bool, one per spin) here and uint64 CI
strings (bit i = orbital i, the encoding of :mod:`hinqs.io.determinants`) at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A move must lower the diagonal energy by more than this (Ha) to be taken: the descent ends
# on ties instead of cycling between determinants of equal energy.
DESCENT_TOLERANCE = 1e-10


@dataclass(frozen=True)
class DiagonalModel:
    """What the diagonal energy needs: h_pp, Coulomb J_pq = (pp|qq), exchange K_pq = (pq|qp), ecore."""

    h: np.ndarray
    coulomb: np.ndarray
    exchange: np.ndarray
    ecore: float

    @classmethod
    def from_integrals(cls, hcore: np.ndarray, eri: np.ndarray, ecore: float) -> DiagonalModel:
        eri = np.asarray(eri)
        idx = np.arange(eri.shape[0])
        coulomb = np.ascontiguousarray(eri[idx[:, None], idx[:, None], idx[None, :], idx[None, :]])
        exchange = np.ascontiguousarray(eri[idx[:, None], idx[None, :], idx[None, :], idx[:, None]])
        return cls(np.diag(np.asarray(hcore)).copy(), coulomb, exchange, float(ecore))

    @property
    def norb(self) -> int:
        return int(self.h.shape[0])

    def energy(self, occ_a: np.ndarray, occ_b: np.ndarray) -> float:
        """<D|H|D> (total, ecore included) of the determinant with these occupations."""
        na, nb = np.asarray(occ_a, float), np.asarray(occ_b, float)
        same = self.coulomb - self.exchange
        return float(
            self.ecore + self.h @ (na + nb) + 0.5 * na @ same @ na + 0.5 * nb @ same @ nb + na @ self.coulomb @ nb
        )

    def single_moves(self, occ: np.ndarray, other: np.ndarray, bias: np.ndarray) -> tuple[float, int, int]:
        """The best single excitation i -> a of the spin with occupations ``occ``: (change, i, a).

        With f = h + bias + (J - K) n + J m (n this spin, m the other), moving an electron from
        i to a changes the energy by f_a - f_i - (J - K)_ia.
        """
        n, m = np.asarray(occ, float), np.asarray(other, float)
        same = self.coulomb - self.exchange
        f = self.h + bias + same @ n + self.coulomb @ m
        occupied, empty = np.flatnonzero(occ), np.flatnonzero(~np.asarray(occ, bool))
        if not len(occupied) or not len(empty):
            return 0.0, -1, -1
        change = f[None, empty] - f[occupied, None] - same[np.ix_(occupied, empty)]
        flat = int(np.argmin(change))  # first of equal minima: row-major order, deterministic
        i, a = divmod(flat, len(empty))
        return float(change.flat[flat]), int(occupied[i]), int(empty[a])

    def descend(
        self, occ_a: np.ndarray, occ_b: np.ndarray, bias: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Greedy descent: take the single excitation (either spin) that lowers the energy most
        until none does. ``bias`` (per orbital, added for alpha and subtracted for beta)
        steers the descent towards a broken-symmetry occupation."""
        occ_a, occ_b = np.array(occ_a, bool), np.array(occ_b, bool)
        bias = np.zeros(self.norb) if bias is None else np.asarray(bias, float)
        for _ in range(4 * self.norb * self.norb):  # each step lowers the energy: a finite walk
            da, ia, aa = self.single_moves(occ_a, occ_b, bias)
            db, ib, ab = self.single_moves(occ_b, occ_a, -bias)
            if min(da, db) > -DESCENT_TOLERANCE:
                break
            occ, i, a = (occ_a, ia, aa) if da <= db else (occ_b, ib, ab)
            occ[i], occ[a] = False, True
        return occ_a, occ_b


def occupation(string: int, norb: int) -> np.ndarray:
    """The occupation vector of a CI string."""
    return np.array([bool(string >> p & 1) for p in range(norb)])


def string_of(occ: np.ndarray) -> int:
    """The CI string (bit p = orbital p) of an occupation vector."""
    return int(sum(1 << int(p) for p in np.flatnonzero(occ)))


def aufbau(norb: int, nelec: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The lowest orbitals of each spin filled, in the file's orbital order."""
    occ_a, occ_b = np.zeros(norb, bool), np.zeros(norb, bool)
    occ_a[: nelec[0]], occ_b[: nelec[1]] = True, True
    return occ_a, occ_b


def rounded(density_diagonal: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` orbitals of largest occupation in a one-spin density: an SCF solution as a determinant."""
    order = np.argsort(-np.asarray(density_diagonal), kind="stable")[:n]
    occ = np.zeros(len(density_diagonal), bool)
    occ[order] = True
    return occ


def split_groups(norb: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Orbital groups for broken-symmetry starts, alpha on the first and beta on the second.

    Without a geometry the orbital order is all there is: localized-orbital FCIDUMPs of
    metal dimers list each centre's orbitals together (the [2Fe-2S] model's d shells are
    orbitals 2-6 and 13-17 of 20), so the two halves are one split; site orbitals of a chain
    or ring alternate in an antiferromagnet, so even and odd orbitals are another.
    """
    orbitals = np.arange(norb)
    return {
        "halves": (orbitals[: norb // 2], orbitals[norb // 2 :]),
        "alternating": (orbitals[0::2], orbitals[1::2]),
    }


def split_bias(norb: int, first: np.ndarray, second: np.ndarray, strength: float) -> np.ndarray:
    """Per-orbital field that lowers alpha on ``first`` and beta on ``second`` (raises the opposite)."""
    bias = np.zeros(norb)
    bias[first], bias[second] = -strength, strength
    return bias


def open_shell_counts(model: DiagonalModel, nelec: tuple[int, int], cuts: int) -> list[int]:
    """How many orbitals to leave singly occupied: where the on-site repulsion J_pp drops most.

    Localized d orbitals of a metal cost far more to doubly occupy than ligand orbitals (the
    [2Fe-2S] model: J_pp 0.71-0.86 Ha on the ten d orbitals, at most 0.48 on the rest), so the
    ``cuts`` largest gaps of the sorted J_pp are the candidates, each a count with the parity
    of N_alpha - N_beta that fits the electrons.
    """
    pairing = np.sort(np.diag(model.coulomb))[::-1]
    gaps = pairing[:-1] - pairing[1:]
    spin = abs(nelec[0] - nelec[1])
    counts = []
    for k in (int(i) + 1 for i in np.argsort(-gaps, kind="stable")):
        double = (sum(nelec) - k) // 2
        if k >= spin and (k - spin) % 2 == 0 and double >= 0 and double + k <= model.norb and k not in counts:
            counts.append(k)
        if len(counts) == cuts:
            break
    return counts


def paired_split(
    model: DiagonalModel, nelec: tuple[int, int], n_open: int, first: np.ndarray, second: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The broken-symmetry determinant of a split: the ``n_open`` orbitals of largest J_pp singly
    occupied, alpha on those in ``first`` and beta on those in ``second``; the remaining
    electrons paired in the other orbitals of lowest h_pp (the [2Fe-2S] textbook start: one
    iron's d shell alpha, the other's beta, every ligand orbital doubly occupied)."""
    norb = model.norb
    open_set = np.argsort(-np.diag(model.coulomb), kind="stable")[:n_open]
    rank = np.zeros(norb, int)
    rank[second] = 1  # alpha takes the open orbitals of the first group before those of the second
    by_group = open_set[np.argsort(rank[open_set], kind="stable")]
    n_alpha_open = (n_open + nelec[0] - nelec[1]) // 2
    occ_a, occ_b = np.zeros(norb, bool), np.zeros(norb, bool)
    occ_a[by_group[:n_alpha_open]], occ_b[by_group[n_alpha_open:]] = True, True
    rest = np.setdiff1d(np.arange(norb), open_set)
    paired = rest[np.argsort(model.h[rest], kind="stable")][: nelec[0] - n_alpha_open]
    occ_a[paired], occ_b[paired] = True, True
    return occ_a, occ_b
