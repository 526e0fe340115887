"""Recall@10 of HNSW and IVF-PQ against exact search on 100k embedding-like vectors, through the Index."""

import numpy as np
import pytest

from bench.vectors import embedding_like, neighbour_recall
from omniembed.index.matryoshka import exact_topk

N, Q = 100_000, 100


def _recall(ix, x, q, **knobs):
    ix.upsert([str(i) for i in range(len(x))], x)
    _, truth = exact_topk(q, x, 10)
    hits = ix.search(q, k=10, **knobs)
    found = np.array([[int(h.id) for h in row] + [-1] * (10 - len(row)) for row in hits])
    recall = neighbour_recall(found, truth, 10)
    print(f"recall@10 {ix.kind} {knobs}: {recall:.4f}")  # shown with -s; quoted in the index report
    return recall


@pytest.fixture(scope="module")
def data():
    return embedding_like(N, 64, seed=0), embedding_like(Q, 64, seed=1)


@pytest.mark.slow
def test_hnsw_recall_at_10_on_100k_vectors_is_at_least_0_9(make_index, data):
    x, q = data
    ix = make_index("hnsw", M=16, ef_construction=40, ef_search=64)
    assert _recall(ix, x, q) >= 0.9


@pytest.mark.slow
def test_ivfpq_recall_at_10_on_100k_vectors_is_at_least_0_9(make_index, data):
    x, q = data
    ix = make_index("ivfpq", nlist=256, nbits=8, nprobe=32, refine=10)
    assert _recall(ix, x, q) >= 0.9


@pytest.mark.slow
def test_adaptive_recall_at_10_on_100k_vectors_is_at_least_0_99(make_index, data):
    x, q = data
    ix = make_index("flat")
    assert _recall(ix, x, q, adaptive=True) >= 0.99
