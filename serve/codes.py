"""Compact embedding codes: int8 with one scale per vector, and sign bits. numpy only (the client uses it).

int8: each vector is scaled so its largest component maps to +-127, then rounded; `scale` = max|x| / 127, so
x ~ codes * scale, the error per component is at most scale / 2, and dot(a, b) ~ dot(codes_a, codes_b) *
scale_a * scale_b. A per-vector scale (not one fixed range) keeps the full 8 bits for unit vectors of any dim,
whose components shrink as 1/sqrt(dim).

binary: one bit per dim, 1 where the component is > 0, packed most significant bit first (numpy's packbits
order): dim i is bit 7 - i % 8 of byte i // 8; the last byte is padded with 0 bits. Similar vectors have a
small Hamming distance; ranking by it approximates ranking by angle.
"""

from __future__ import annotations

import numpy as np


def to_int8(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float -> ((N, D) int8 codes, (N,) float32 scales)."""
    x = np.asarray(vectors, dtype=np.float32)
    peak = np.abs(x).max(axis=1)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(x / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales


def from_int8(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The approximate float vectors of int8 codes: (N, D) float32."""
    return np.asarray(codes, dtype=np.float32) * np.asarray(scales, dtype=np.float32)[:, None]


def to_bits(vectors: np.ndarray) -> np.ndarray:
    """(N, D) float -> (N, ceil(D / 8)) uint8 packed sign bits."""
    return np.packbits(np.asarray(vectors) > 0, axis=1)


def from_bits(bits: np.ndarray, dim: int) -> np.ndarray:
    """Packed sign bits -> (N, dim) float32 of +-1."""
    signs = np.unpackbits(np.asarray(bits, dtype=np.uint8), axis=1, count=dim)
    return signs.astype(np.float32) * 2.0 - 1.0


def hamming(bits: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Hamming distances between each row of `bits` (Q, B) and each row of `other` (N, B): (Q, N) int."""
    x = np.bitwise_xor(np.asarray(bits, np.uint8)[:, None, :], np.asarray(other, np.uint8)[None, :, :])
    return np.unpackbits(x, axis=2).sum(axis=2)
