"""16 concurrent clients get exactly what sequential calls get; concurrent writers lose nothing."""

from __future__ import annotations

import threading

import numpy as np

from omniembed.serve import Client

from .conftest import TOKEN, unit_vectors

CLIENTS = 16


def _run_clients(fn):
    """fn(worker_index) in 16 threads released together; returns their results, re-raising any error."""
    results, errors = [None] * CLIENTS, []
    barrier = threading.Barrier(CLIENTS)

    def worker(w):
        try:
            barrier.wait()
            results[w] = fn(w)
        except Exception as exc:  # noqa: BLE001 - re-raised below in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _answers(client, queries, order, k=10):
    """{query number: hits} for queries asked in `order`; query j's filter and dim depend on j only."""
    out = {}
    for j in order:
        flt = {"payload": {"shard": int(j) % 4}} if j % 3 == 0 else None
        hits = client.search(queries[j], k=k, filter=flt, dim=8 if j % 5 == 0 else 0)
        out[int(j)] = [(h.id, h.score) for h in hits]
    out["get"] = [(i.id, i.vector.tolist()) for i in client.get([f"v{n}" for n in range(0, 300, 37)])]
    return out


def test_sixteen_concurrent_clients_get_the_same_answers_as_sequential_calls(server):
    vecs = unit_vectors(300, seed=1)
    queries = unit_vectors(24, seed=2)
    with Client(server.target, token=TOKEN) as c:
        c.upsert([f"v{n}" for n in range(300)], vecs, metadata=[{"payload": {"shard": n % 4}} for n in range(300)])
        sequential = _answers(c, queries, range(len(queries)))

    def one_client(w):
        with Client(server.target, token=TOKEN) as mine:
            # each client walks the queries from a different start, so different queries overlap in time
            return _answers(mine, queries, np.roll(np.arange(len(queries)), w))

    for answers in _run_clients(one_client):
        assert answers == sequential


def test_sixteen_concurrent_writers_all_land_and_each_item_reads_back(server):
    per_client = 40

    def writer(w):
        with Client(server.target, token=TOKEN) as mine:
            vecs = unit_vectors(per_client, seed=100 + w)
            for n in range(0, per_client, 8):
                mine.upsert([f"w{w}-{n + i}" for i in range(8)], vecs[n : n + 8])
            return vecs

    written = _run_clients(writer)
    with Client(server.target, token=TOKEN) as c:
        assert c.stats()["count"] == CLIENTS * per_client
        for w in (0, 7, 15):
            items = c.get([f"w{w}-{n}" for n in range(per_client)])
            np.testing.assert_allclose(np.stack([i.vector for i in items]), written[w], atol=1e-6)
