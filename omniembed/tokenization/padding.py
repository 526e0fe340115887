"""Right-padding of id sequences into one batch: numpy, so the torch-free runtime and the torch paths share it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_right(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """ids (B, T) int64 padded with `pad_id` after each sequence to the longest's length T, and mask (B, T) bool,
    True on real tokens."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    width = int(lengths.max()) if len(lengths) else 0
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    for row, s in enumerate(seqs):
        ids[row, :lengths[row]] = s
    mask = np.arange(width)[None, :] < lengths[:, None]
    return ids, mask
