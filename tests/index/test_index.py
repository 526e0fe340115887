"""Index behaviour on every backend and kind (FAISS and Milvus Lite give the same answers): ids, upsert/replace/delete/get, exact-enough search, filters, prefix dims."""

import numpy as np
import pytest

from omniembed.index import Index, IndexInputError
from omniembed.index.matryoshka import exact_topk, normalize, truncate

from .conftest import BACKEND_KINDS, BACKENDS


KINDS = ["flat", "hnsw", "ivfpq"]


def ids_of(hits):
    return [h.id for h in hits]
N = 3000


def _fill(ix, x, with_meta=True):
    ids = [f"v{i}" for i in range(len(x))]
    meta = [
        {"modality": ("image", "audio", "text")[i % 3], "uri": f"file://{i}",
         "payload": {"group": i % 7, "even": i % 2 == 0}}
        for i in range(len(x))
    ] if with_meta else None
    ix.upsert(ids, x, meta)
    return ids


@pytest.mark.parametrize("backend, kind", BACKEND_KINDS)
def test_each_stored_vector_finds_itself_first_with_score_one(make_index, vectors, backend, kind):
    x = vectors(N)
    ix = make_index(kind, backend=backend)
    _fill(ix, x)
    hits = ix.search(x[:20], k=5)
    assert [h[0].id for h in hits] == [f"v{i}" for i in range(20)]
    assert all(abs(h[0].score - 1.0) < 1e-3 for h in hits)
    assert hits[3][0].metadata == {"modality": "image", "uri": "file://3", "payload": {"group": 3, "even": False}}


@pytest.mark.parametrize("backend, kind", BACKEND_KINDS)
def test_deleted_ids_never_come_back_from_search_or_get(make_index, vectors, backend, kind):
    x = vectors(N)
    ix = make_index(kind, backend=backend)
    ids = _fill(ix, x)
    gone = set(ids[::3])
    assert ix.delete(sorted(gone)) == len(gone)
    assert ix.delete(sorted(gone)) == 0  # deleting again is a no-op
    for hits in ix.search(x[:300], k=10):
        assert len(hits) == 10 and not gone & set(ids_of(hits))
    assert all(item is None for item in ix.get(sorted(gone)[:10]))
    assert len(ix) == N - len(gone)


@pytest.mark.parametrize("backend, kind", BACKEND_KINDS)
def test_upsert_of_an_existing_id_replaces_vector_and_metadata(make_index, vectors, backend, kind):
    x = vectors(N)
    ix = make_index(kind, backend=backend)
    _fill(ix, x)
    ix.upsert(["v0"], x[1500], [{"modality": "video", "payload": {"new": 1}}])
    item = ix.get(["v0"])[0]
    np.testing.assert_allclose(item.vector, x[1500], atol=1e-6)
    assert item.metadata["modality"] == "video"
    top = ix.search(x[1500], k=2)[0]
    assert set(ids_of(top)) == {"v0", "v1500"}
    assert "v0" not in ids_of(ix.search(x[0], k=3)[0])  # the old vector left with the old slot
    assert len(ix) == N


@pytest.mark.parametrize("backend, kind", BACKEND_KINDS)
def test_filtered_search_returns_k_matching_hits_when_k_exist(make_index, vectors, backend, kind):
    x = vectors(N)
    ix = make_index(kind, backend=backend)
    _fill(ix, x)
    flt = {"modality": "audio", "payload": {"group": 2}}  # ~143 items: a rare subset
    for hits in ix.search(x[:50], k=10, filter=flt):
        assert len(hits) == 10
        assert all(h.metadata["modality"] == "audio" and h.metadata["payload"]["group"] == 2 for h in hits)
    tiny = {"payload": {"group": 4, "even": True}, "modality": "image"}  # i % 42 == 18: 71 items
    allowed = [i for i in range(N) if i % 7 == 4 and i % 2 == 0 and i % 3 == 0]
    hits = ix.search(x[7], k=100, filter=tiny)[0]
    assert sorted(ids_of(hits)) == sorted(f"v{i}" for i in allowed)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_filtered_search_on_a_large_subset_uses_the_selector_and_keeps_recall(make_index, vectors, kind, monkeypatch):
    import omniembed.index.core as core

    monkeypatch.setattr(core, "SUBSET_EXACT_MAX", 10)  # force the IDSelector path
    x = vectors(N)
    ix = make_index(kind)  # the FAISS IDSelector path: FAISS only
    _fill(ix, x)
    even = np.arange(0, N, 2)
    _, truth = exact_topk(x[:40], x[even], 10)
    hits = ix.search(x[:40], k=10, filter={"payload": {"even": True}})
    found = 0
    for hit_row, t in zip(hits, truth):
        assert len(hit_row) == 10 and all(h.metadata["payload"]["even"] for h in hit_row)
        found += len(set(ids_of(hit_row)) & {f"v{even[j]}" for j in t})
    assert found / 400 > 0.8


def test_hnsw_keeps_k_results_when_most_of_the_graph_is_dead(make_index, vectors):
    x = vectors(N)
    ix = make_index("hnsw")
    ids = _fill(ix, x)
    keep = set(ids[::50])
    ix.delete([i for i in ids if i not in keep])
    for hits in ix.search(x[:30], k=10):
        assert len(hits) == 10 and set(ids_of(hits)) <= keep
    assert ix.stats()["ann_entries"] == N  # dead nodes are still in the graph until compaction
    ix.compact()
    stats = ix.stats()
    assert stats["ann_entries"] == stats["count"] == len(keep) and stats["dead_slots"] == 0
    for hits in ix.search(x[:30], k=10):
        assert len(hits) == 10 and set(ids_of(hits)) <= keep


@pytest.mark.parametrize("backend, kind", BACKEND_KINDS)
def test_prefix_dim_search_is_exact_search_on_renormalised_prefixes(make_index, vectors, backend, kind):
    x = vectors(N)
    ix = make_index(kind, backend=backend)
    _fill(ix, x, with_meta=False)
    q = vectors(20, seed=5)
    want_scores, want = exact_topk(truncate(q, 16), truncate(x, 16), 10)
    hits = ix.search(q, k=10, dim=16)
    for row, w, ws in zip(hits, want, want_scores):
        assert ids_of(row) == [f"v{j}" for j in w]
        np.testing.assert_allclose([h.score for h in row], ws, atol=1e-5)


@pytest.mark.parametrize("backend, kind", BACKEND_KINDS)
def test_adaptive_search_matches_exact_search_on_embedding_like_vectors(make_index, vectors, backend, kind):
    x = vectors(N)
    ix = make_index(kind, backend=backend)
    _fill(ix, x, with_meta=False)
    q = vectors(50, seed=6)
    _, want = exact_topk(q, x, 10)
    hits = ix.search(q, k=10, adaptive={"prefix": 16, "shortlist": 100})
    found = sum(len(set(ids_of(row)) & {f"v{j}" for j in w}) for row, w in zip(hits, want))
    assert found / 500 >= 0.98
    # scores of an adaptive hit are full-dimension inner products
    stored = ix.get([hits[0][0].id])[0].vector
    np.testing.assert_allclose(hits[0][0].score, float(normalize(q[:1])[0] @ stored), atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptive_search_respects_deletes_and_filters(make_index, vectors, monkeypatch, backend):
    import omniembed.index.core as core

    monkeypatch.setattr(core, "SUBSET_EXACT_MAX", 10)
    x = vectors(N)
    ix = make_index("flat", backend=backend, adaptive=True)
    ids = _fill(ix, x)
    ix.search(x[0], k=1)  # builds the prefix index before the deletes, so they must update it
    gone = set(ids[1::2])
    ix.delete(sorted(gone))
    for hits in ix.search(x[:40], k=10, filter={"modality": ["image", "text"]}):
        assert len(hits) == 10 and not gone & set(ids_of(hits))
        assert all(h.metadata["modality"] in ("image", "text") for h in hits)


def test_ivfpq_searches_exactly_until_enough_vectors_arrive_to_train(make_index, vectors):
    x = vectors(N)
    ix = make_index("ivfpq")  # nbits 6 -> trains at 2560 vectors
    ix.upsert([f"v{i}" for i in range(300)], x[:300])
    assert not ix.stats()["trained"] and ix.stats()["ann_entries"] == 0
    assert ids_of(ix.search(x[5], k=1)[0]) == ["v5"]
    ix.upsert([f"v{i}" for i in range(300, N)], x[300:])
    assert ix.stats()["trained"] and ix.stats()["ann_entries"] == N


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_on_an_empty_index_returns_empty_hit_lists(make_index, backend):
    ix = make_index("hnsw", backend=backend)
    assert ix.search(np.ones(64, np.float32), k=5) == [[]]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ix: ix.upsert(["a"], np.ones((1, 8), np.float32)), r"shape \(1, 8\)"),
        (lambda ix: ix.upsert(["a", "a"], np.ones((2, 64), np.float32)), "appears twice"),
        (lambda ix: ix.upsert(["a"], np.full((1, 64), np.nan, np.float32)), "NaN"),
        (lambda ix: ix.upsert(["a"], np.zeros((1, 64), np.float32)), "all zeros"),
        (lambda ix: ix.upsert("abc", np.ones((3, 64), np.float32)), "single string"),
        (lambda ix: ix.upsert([""], np.ones((1, 64), np.float32)), "non-empty"),
        (lambda ix: ix.search(np.ones(32, np.float32)), r"expected \(64,\)"),
        (lambda ix: ix.search(np.ones(64, np.float32), k=0), "positive int"),
        (lambda ix: ix.search(np.ones(64, np.float32), dim=65), r"dim must be an int in \[1, 64\]"),
        (lambda ix: ix.search(np.ones(64, np.float32), adaptive={"prefx": 8}), "unknown keys"),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_arguments_raise_input_errors_that_name_the_problem(make_index, call, message, backend):
    ix = make_index("flat", backend=backend)
    with pytest.raises(IndexInputError, match=message):
        call(ix)


def test_create_refuses_a_non_empty_directory_and_unknown_parameters(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(IndexInputError, match="not empty"):
        Index.create(tmp_path / "busy", 8)
    with pytest.raises(IndexInputError, match="unknown parameters"):
        Index.create(tmp_path / "new", 8, "hnsw", nlist=3)
    with pytest.raises(IndexInputError, match="metric 'l2'"):
        Index.create(tmp_path / "new2", 8, metric="l2")


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_id_rule_is_enforced_by_the_index_itself(make_index, backend):
    index = make_index(dim=4, backend=backend)
    for bad in ("", "a\x00", "tab\there", "del\x7f", "c1\x85", "x" * 513, "é" * 257):
        with pytest.raises(IndexInputError, match="id "):
            index.upsert([bad], np.ones((1, 4), np.float32))
    index.upsert(["x" * 512, "é" * 256, "../x"], np.ones((3, 4), np.float32))
    assert index.stats()["count"] == 3
    assert [item.id for item in index.get(["x" * 512, "é" * 256, "../x"])] == ["x" * 512, "é" * 256, "../x"]


def test_small_searches_run_on_one_openmp_thread_and_leave_the_callers_count_as_it_was(make_index, vectors,
                                                                                     monkeypatch):
    import faiss

    from omniembed.index import core

    x = vectors(500)
    ix = make_index("flat")
    _fill(ix, x, with_meta=False)
    seen = []
    search = ix._search_rows
    monkeypatch.setattr(ix, "_search_rows", lambda *a: (seen.append(faiss.omp_get_max_threads()), search(*a))[1])
    before = faiss.omp_get_max_threads()
    small = ix.search(x[:3], k=5)
    monkeypatch.setattr(core, "PARALLEL_SEARCH_WORK", 1)  # every search counts as large
    large = ix.search(x[:3], k=5)
    assert seen == [1, before] and faiss.omp_get_max_threads() == before
    assert [ids_of(h) for h in small] == [ids_of(h) for h in large]  # the same answer on any thread count
