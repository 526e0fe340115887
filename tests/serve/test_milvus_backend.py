"""`omniembed serve --index milvus-lite://...` with a model, and stateless replicas sharing one Milvus server."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from omniembed.index import open_index
from omniembed.serve import Client

pytestmark = pytest.mark.slow


def _serve(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "omniembed.serve", "--port", "0", "--host", "127.0.0.1", "--threads", "1",
         "--decode-workers", "0", "--log-level", "WARNING", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise AssertionError(f"serve did not start: {line} {proc.stderr.read()}")
    return proc, re.search(r"listening on (\S+)", line).group(1)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_a_model_on_milvus_lite_embeds_indexes_searches_and_persists(tiny_bundle, tmp_path):
    uri = f"milvus-lite://{tmp_path}/ix.db"
    proc, target = _serve("--bundle", os.fspath(tiny_bundle), "--index", uri)
    texts = ["a small red circle", "a large blue square", "a green triangle moving left", "a quiet low tone"]
    try:
        with Client(target, timeout=60) as c:
            assert c.upsert([f"t{i}" for i in range(4)], items=texts) == 4
            vectors = c.embed(texts)
            for i, v in enumerate(vectors):
                assert c.search(v, k=1)[0].id == f"t{i}"
            assert c.search(texts[2], k=1)[0].id == "t2"  # a text query, embedded by the server
            small = c.embed(texts, dim=min(c.stats()["embed_dims"]))
            assert c.search(small[1], k=1, dim=small.shape[1])[0].id == "t1"  # a Matryoshka prefix field
            stats = c.stats()
            assert stats["count"] == 4 and stats["index"]["backend"] == "milvus"
            assert set(stats["index"]["prefix_fields"]) >= set(d for d in stats["embed_dims"] if d < stats["index_dim"])
    finally:
        _stop(proc)
    with open_index(uri) as ix:  # what the server acknowledged is there after it exits
        assert len(ix) == 4 and ix.get(["t3"])[0].metadata["modality"] == "text"


def test_two_stateless_replicas_share_one_milvus_server(tmp_path):
    port = _free_port()
    milvus = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "milvus-lite"), "server",
                               "--data-dir", str(tmp_path / "milvus"), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    replicas = []
    try:
        deadline = time.monotonic() + 60
        while True:  # wait for Milvus to accept connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert milvus.poll() is None and time.monotonic() < deadline, milvus.stderr.read()
                time.sleep(0.2)
        uri = f"http://127.0.0.1:{port}?collection=shared"
        replicas = [_serve("--index", uri, "--dim", "16") for _ in range(2)]
        (pa, a), (pb, b) = replicas
        vecs = np.random.default_rng(0).standard_normal((30, 16)).astype(np.float32)
        with Client(a, timeout=30) as ca, Client(b, timeout=30) as cb:
            ca.upsert([f"v{i}" for i in range(30)], vecs, metadata=[{"payload": {"n": i}} for i in range(30)])
            assert cb.search(vecs[12], k=1)[0].id == "v12"  # written through A, found through B
            assert cb.delete(["v12"]).deleted == 1
            assert ca.search(vecs[12], k=1)[0].id != "v12"
            assert ca.stats()["count"] == cb.stats()["count"] == 29
            assert cb.get(["v3"])[0].metadata["payload"] == {"n": 3}
    finally:
        for proc, _ in replicas:
            _stop(proc)
        milvus.send_signal(signal.SIGTERM)
        try:
            milvus.wait(timeout=30)
        except subprocess.TimeoutExpired:
            milvus.kill()
