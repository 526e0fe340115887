"""omniembed.serve.codes: the int8 and sign-bit rules the service documents."""

from __future__ import annotations

import numpy as np

from omniembed.serve import codes


def _unit(n, d, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_int8_codes_use_the_full_range_and_stay_within_half_a_step():
    x = _unit(50, 96)
    q, scales = codes.to_int8(x)
    assert q.dtype == np.int8 and (np.abs(q).max(axis=1) == 127).all()
    assert np.allclose(scales, np.abs(x).max(axis=1) / 127)
    assert (np.abs(codes.from_int8(q, scales) - x) <= scales[:, None] / 2 + 1e-7).all()
    # dot products of codes times both scales approximate the float ones
    approx = (q.astype(np.int32) @ q.T.astype(np.int32)) * scales[:, None] * scales[None, :]
    assert np.abs(approx - x @ x.T).max() < 0.02


def test_an_all_zero_vector_gets_zero_codes_not_a_division_by_zero():
    q, scales = codes.to_int8(np.zeros((1, 8), np.float32))
    assert (q == 0).all() and scales[0] == 1.0


def test_sign_bits_are_packed_most_significant_first():
    x = np.array([[1, -1, -1, -1, -1, -1, -1, 0.5, -2, 3]], np.float32)  # dims 0 and 7 set; then dim 9
    bits = codes.to_bits(x)
    assert bits.tolist() == [[0b10000001, 0b01000000]]
    assert codes.from_bits(bits, 10).tolist() == [[1, -1, -1, -1, -1, -1, -1, 1, -1, 1]]


def test_hamming_distance_counts_the_dims_whose_signs_differ():
    x = _unit(6, 40, seed=1)
    bits = codes.to_bits(x)
    expected = ((x[:, None, :] > 0) != (x[None, :, :] > 0)).sum(axis=2)
    assert np.array_equal(codes.hamming(bits, bits), expected)
