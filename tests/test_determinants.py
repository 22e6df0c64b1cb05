"""Determinant encodings agree with qiskit-addon-sqd's own conversions."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit_addon_sqd.fermion import bitstring_matrix_to_ci_strs

from hinqs.io.determinants import (
    from_bitstring_matrix,
    occupations_to_strings,
    popcount,
    strings_to_occupations,
    to_bitstring_matrix,
    unique_determinants,
    validate_determinants,
)
from hinqs.seeding import int_seed, numpy_stream


def random_determinants(rng, n, norb, nelec):
    occ_a = np.array([rng.permutation(norb) < nelec[0] for _ in range(n)])
    occ_b = np.array([rng.permutation(norb) < nelec[1] for _ in range(n)])
    return occupations_to_strings(occ_a), occupations_to_strings(occ_b)


def test_round_trips_and_qiskit_layout():
    rng = np.random.default_rng(0)
    norb = 9
    alpha, beta = random_determinants(rng, 50, norb, (4, 3))
    assert np.array_equal(occupations_to_strings(strings_to_occupations(alpha, norb)), alpha)
    matrix = to_bitstring_matrix(alpha, beta, norb)
    back_a, back_b = from_bitstring_matrix(matrix)
    assert np.array_equal(back_a, alpha) and np.array_equal(back_b, beta)
    qa, qb = bitstring_matrix_to_ci_strs(matrix, open_shell=True)
    assert set(qa.tolist()) == set(alpha.tolist())
    assert set(qb.tolist()) == set(beta.tolist())
    assert np.all(popcount(alpha) == 4) and np.all(popcount(beta) == 3)


def test_64_orbitals_use_the_top_bit():
    occ = np.zeros((1, 64), dtype=np.uint8)
    occ[0, 63] = 1
    strings = occupations_to_strings(occ)
    assert strings[0] == np.uint64(1) << np.uint64(63)
    assert np.array_equal(strings_to_occupations(strings, 64), occ)


def test_unique_determinants_sums_counts():
    alpha = np.array([3, 5, 3, 3], dtype=np.uint64)
    beta = np.array([3, 3, 3, 5], dtype=np.uint64)
    a, b, c = unique_determinants(alpha, beta, np.array([1, 2, 3, 4]))
    assert list(zip(a.tolist(), b.tolist(), c.tolist(), strict=True)) == [(3, 3, 4), (3, 5, 4), (5, 3, 2)]


def test_validate_rejects_wrong_electron_count():
    with pytest.raises(ValueError, match="2 alpha and 2 beta"):
        validate_determinants(np.array([3, 7], dtype=np.uint64), np.array([3, 3], dtype=np.uint64), 4, (2, 2))
    with pytest.raises(ValueError, match="beyond norb"):
        validate_determinants(np.array([17], dtype=np.uint64), np.array([3], dtype=np.uint64), 4, (2, 2))


def test_named_streams_do_not_depend_on_creation_order():
    first = numpy_stream(7, "batch", 0, 1).random(4)
    numpy_stream(7, "batch", 0, 0).random(100)
    assert np.array_equal(numpy_stream(7, "batch", 0, 1).random(4), first)
    assert not np.array_equal(numpy_stream(7, "batch", 0, 2).random(4), first)
    assert not np.array_equal(numpy_stream(8, "batch", 0, 1).random(4), first)
    assert int_seed(7, "nqs") == int_seed(7, "nqs") != int_seed(7, "nqs2")
    assert 0 <= int_seed(7, "nqs") < 2**63
