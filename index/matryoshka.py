"""Math of Matryoshka retrieval: prefix truncation, exact top-k, shortlist re-ranking. Pure functions."""

from __future__ import annotations

import faiss
import numpy as np


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32, contiguous); zero rows stay zero."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, np.float32(1e-30)), dtype=np.float32)


def truncate(x: np.ndarray, dim: int) -> np.ndarray:
    """The first `dim` components of each row, re-normalised: a Matryoshka embedding at a smaller size."""
    return normalize(x[..., :dim])


def exact_topk(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k: (scores (Q, k), row indices (Q, k)), -1 where base has fewer than k rows."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if len(base) == 0:
        return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
    scores, idx = faiss.knn(queries, np.ascontiguousarray(base, dtype=np.float32), min(k, len(base)),
                            metric=faiss.METRIC_INNER_PRODUCT)
    if idx.shape[1] < k:
        pad = k - idx.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
    return scores, idx


def rerank(
    queries: np.ndarray, candidates: np.ndarray, vectors: np.ndarray, k: int, dim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact re-rank of a shortlist: candidates (Q, C) row ids into `vectors` (-1 = none) -> top-k (Q, k).

    With `dim`, scores use the first `dim` components re-normalised (queries must already be truncated)."""
    q_n = len(queries)
    out_s = np.full((q_n, k), -np.inf, np.float32)
    out_i = np.full((q_n, k), -1, np.int64)
    for qi in range(q_n):
        cand = candidates[qi]
        cand = cand[cand >= 0]
        if len(cand) == 0:
            continue
        rows = vectors[cand]  # (C, D)
        if dim is not None and dim < rows.shape[1]:
            rows = truncate(rows, dim)
        scores = rows @ queries[qi]  # (C,)
        top = min(k, len(cand))
        part = np.argpartition(-scores, top - 1)[:top]
        order = part[np.argsort(-scores[part], kind="stable")]
        out_s[qi, :top] = scores[order]
        out_i[qi, :top] = cand[order]
    return out_s, out_i
