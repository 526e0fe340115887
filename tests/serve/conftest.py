"""Real servers on localhost over real index directories (tmp), no model: the vector paths."""

from __future__ import annotations

import numpy as np
import pytest

from omniembed.index import Index, open_index
from omniembed.serve import Client
from omniembed.serve.server import Server, ServerConfig

DIM = 16
TOKEN = "s3cret-token"


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def index_backend():
    """The backend a test module's servers index with; modules that run their cases on every backend override
    this with a parametrised fixture (test_vector_rpcs, test_errors)."""
    return "faiss"


@pytest.fixture
def make_server(tmp_path, index_backend):
    """make_server(**config) -> a started Server over a fresh flat index (dim 16, no model unless `embedder`
    and its `dim` are given) on the module's backend; stopped at teardown."""
    servers = []

    def make(index_kind: str = "flat", embedder=None, dim: int = DIM, **config) -> Server:
        if index_backend == "milvus":
            prefixes = embedder.dims if embedder is not None else (4, 8)
            index = open_index(f"milvus-lite://{tmp_path}/ix{len(servers)}.db", dim, index_kind, prefixes=prefixes)
        else:
            index = Index.create(tmp_path / f"ix{len(servers)}", dim=dim, kind=index_kind)
        server = Server(index, embedder, ServerConfig(**{"token": TOKEN, "grace_s": 2.0, **config})).start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop(grace=0)


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def client(server):
    with Client(server.target, token=TOKEN, timeout=10) as c:
        yield c
