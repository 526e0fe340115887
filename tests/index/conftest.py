"""Fixtures of the index tests: embedding-like vectors and a factory of indexes in temp dirs."""

import os

# OpenMP threads that spin while waiting burn cores that other test processes need and slow FAISS k-means
# many times over under load; passive waiting must be set before faiss loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import pytest  # noqa: E402

from omniembed.index import Index
from bench.vectors import embedding_like

faiss.omp_set_num_threads(2)

DIM = 64
KIND_PARAMS = {
    "flat": {},
    "hnsw": {"M": 16, "ef_construction": 40, "ef_search": 32},
    # small PQ codebooks so a few thousand vectors are enough to train (40 * 2**6 = 2560)
    "ivfpq": {"nlist": 16, "nbits": 6, "nprobe": 4, "refine": 8},
}


@pytest.fixture
def vectors():
    def make(n, seed=0, dim=DIM, clusters=50):
        return embedding_like(n, dim, clusters=clusters, seed=seed)

    return make


@pytest.fixture
def make_index(tmp_path):
    made = []

    def make(kind="flat", dim=DIM, name="ix", **params):
        ix = Index.create(tmp_path / name, dim, kind, **{**KIND_PARAMS[kind], **params})
        made.append(ix)
        return ix

    yield make
    for ix in made:
        ix.close()
