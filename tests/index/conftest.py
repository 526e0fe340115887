"""Fixtures of the index tests: embedding-like vectors and a factory of indexes in temp dirs."""

import os

# OpenMP threads that spin while waiting burn cores that other test processes need and slow FAISS k-means
# many times over under load; passive waiting must be set before faiss loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import pytest  # noqa: E402

from omniembed.index import Index, open_index
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


# Every backend the index API has: FAISS in a folder, Milvus Lite in process (kinds it implements).
BACKEND_KINDS = [("faiss", "flat"), ("faiss", "hnsw"), ("faiss", "ivfpq"), ("milvus", "flat"), ("milvus", "hnsw")]
BACKENDS = ["faiss", "milvus"]
PREFIXES = (16,)  # the Matryoshka prefix the tests search at: Milvus stores a field for it


@pytest.fixture
def make_index(tmp_path):
    made = []

    def make(kind="flat", dim=DIM, name="ix", backend="faiss", **params):
        if backend == "milvus":
            ix = open_index(f"milvus-lite://{tmp_path}/{name}.db", dim, kind, prefixes=PREFIXES,
                            **{**KIND_PARAMS[kind], **params})
        else:
            ix = Index.create(tmp_path / name, dim, kind, **{**KIND_PARAMS[kind], **params})
        made.append(ix)
        return ix

    yield make
    for ix in made:
        ix.close()
