"""Real servers on localhost over real index directories (tmp), no model: the vector paths."""

from __future__ import annotations

import numpy as np
import pytest

from omniembed.index import Index
from omniembed.serve import Client
from omniembed.serve.server import Server, ServerConfig

DIM = 16
TOKEN = "s3cret-token"


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def make_server(tmp_path):
    """make_server(**config) -> a started Server over a fresh flat index (dim 16, no model unless `embedder`
    and its `dim` are given); stopped at teardown."""
    servers = []

    def make(index_kind: str = "flat", embedder=None, dim: int = DIM, **config) -> Server:
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
