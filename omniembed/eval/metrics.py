"""Ranking metrics over L2-normalised vectors and hit keys (see hits.py). Pure numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KS = (1, 5, 10)


def ranked_hits(queries: np.ndarray, gallery: np.ndarray, query_keys: Sequence, gallery_keys: Sequence) -> np.ndarray:
    """(Q, G) bool: True where the gallery row ranked at that place (by cosine, ties in gallery order) is a hit."""
    sim = queries @ gallery.T  # (Q, G)
    order = np.argsort(-sim, axis=1, kind="stable")
    gk = np.asarray([str(k) for k in gallery_keys])
    qk = np.asarray([str(k) for k in query_keys])
    return gk[order] == qk[:, None]


def recall_at_k(queries: np.ndarray, gallery: np.ndarray, query_keys: Sequence, gallery_keys: Sequence,
                ks: Sequence[int] = KS) -> dict[int, float]:
    """Share of queries whose top-k gallery rows include a hit. queries (Q, D), gallery (G, D): unit rows."""
    hits = ranked_hits(queries, gallery, query_keys, gallery_keys)
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def mean_average_precision(hits: np.ndarray) -> float:
    """Mean over queries of average precision: the precision at each hit's rank, averaged over the query's
    hits (a query without hits contributes 0). hits: (Q, G) from ranked_hits."""
    if hits.size == 0:
        return 0.0
    cum = np.cumsum(hits, axis=1)
    ranks = np.arange(1, hits.shape[1] + 1)
    precision = np.where(hits, cum / ranks, 0.0).sum(axis=1)
    n = hits.sum(axis=1)
    return float(np.mean(np.where(n > 0, precision / np.maximum(n, 1), 0.0)))


def chance_recall(query_keys: Sequence, gallery_keys: Sequence, k: int) -> float:
    """Expected recall@k of a random ranking: 1 - C(G-m, k) / C(G, k) per query, m = matching gallery rows."""
    G = len(gallery_keys)
    counts: dict = {}
    for g in gallery_keys:
        counts[g] = counts.get(g, 0) + 1
    out = []
    for q in query_keys:
        m = counts.get(q, 0)
        miss = 1.0
        for i in range(min(k, G)):  # product of (G-m-i)/(G-i): no match among the first k draws
            miss *= max(G - m - i, 0) / (G - i)
        out.append(1.0 - miss)
    return float(np.mean(out)) if out else 0.0
