"""Searches run concurrently with writes in one process: no errors, no torn reads, no deleted id served."""

import threading

import numpy as np
import pytest


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_searches_concurrent_with_upserts_and_deletes_stay_consistent(make_index, vectors, kind):
    x = vectors(4000)
    ix = make_index(kind, adaptive=True)
    ix.upsert([f"s{i}" for i in range(1000)], x[:1000])
    deleted: set[str] = set()
    deleted_lock = threading.Lock()
    errors: list[BaseException] = []
    stop = threading.Event()
    searches = [0]

    def writer():
        try:
            for start in range(1000, 4000, 100):
                ix.upsert([f"s{i}" for i in range(start, start + 100)], x[start : start + 100])
                gone = [f"s{i}" for i in range(start - 1000, start - 1000 + 30)]
                ix.delete(gone)
                with deleted_lock:
                    deleted.update(gone)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            stop.set()

    def reader(seed):
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                with deleted_lock:
                    gone_before = set(deleted)  # deletes acknowledged before this search began
                q = x[rng.integers(0, 4000, 8)]
                for hits in ix.search(q, k=10):
                    ids = {h.id for h in hits}
                    assert not ids & gone_before, f"deleted ids served: {sorted(ids & gone_before)[:3]}"
                    assert len(hits) == 10
                for item in ix.get([f"s{i}" for i in rng.integers(0, 4000, 5)]):
                    assert item is None or abs(float(np.linalg.norm(item.vector)) - 1) < 1e-4
                searches[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    assert searches[0] >= 3  # the readers really ran while the writer worked
    assert len(ix) == 4000 - len(deleted)
