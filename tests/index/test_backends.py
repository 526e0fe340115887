"""The same filter language, windows, persistence and answers on both backends (FAISS and Milvus Lite)."""

import numpy as np
import pytest

from omniembed.index import IndexInputError, backend_of, open_index
from omniembed.index.milvus import filter_expression

from .conftest import BACKENDS

ROWS = [
    ("a", {"modality": "image", "uri": "a.png", "payload": {"colour": "red", "size": 3, "ok": True}}),
    ("b", {"modality": "audio", "uri": "b.wav", "payload": {"colour": "red", "size": 3.0, "ok": False}}),
    ("c", {"modality": "text", "uri": None, "payload": {"colour": "blue", "size": "3", "tag": None}}),
    ("d", {"modality": "image", "uri": "d.png", "payload": {"shape": {"kind": "circle"}, "size": 1,
                                                             "tags": ["red"], "a.b": 1}}),
    ("e", {"modality": None, "uri": None, "payload": {}}),
]


@pytest.fixture(params=BACKENDS)
def small(request, make_index, vectors):
    ix = make_index("flat", dim=8, backend=request.param)
    ix.upsert([r[0] for r in ROWS], vectors(len(ROWS), dim=8), [r[1] for r in ROWS])
    return ix


def _ids(ix, flt):
    return sorted(h.id for h in ix.search(np.ones(8, np.float32), k=10, filter=flt)[0])


def test_filters_mean_the_same_on_every_backend(small):
    assert _ids(small, {"modality": "image"}) == ["a", "d"]
    assert _ids(small, {"modality": ["audio", "text"]}) == ["b", "c"]
    assert _ids(small, {"uri": "d.png"}) == ["d"]
    assert _ids(small, {"payload": {"size": 3}}) == ["a", "b"]  # 3 and 3.0 are the same JSON number
    assert _ids(small, {"payload": {"size": 3.0}}) == ["a", "b"]
    assert _ids(small, {"payload": {"size": "3"}}) == ["c"]  # the string "3" is not the number 3
    assert _ids(small, {"payload": {"ok": True}}) == ["a"]  # true is not 1
    assert _ids(small, {"payload": {"ok": False}}) == ["b"]
    assert _ids(small, {"payload": {"tag": None}}) == ["c"]  # null only where stored, not where absent
    assert _ids(small, {"modality": "image", "payload": {"colour": "red"}}) == ["a"]
    assert _ids(small, {"payload": {"colour": ["red", "blue"], "size": 3}}) == ["a", "b"]
    assert _ids(small, {"payload": {"shape.kind": "circle"}}) == ["d"]
    assert _ids(small, {"payload": {"tags": "red"}}) == []  # a list is not one of its elements
    assert _ids(small, {"payload": {"size": 2}}) == []


@pytest.mark.parametrize("flt, message", [
    ({"colour": "red"}, "unknown keys"),
    ({"modality": []}, "empty list"),
    ({"payload": {"a'); DROP TABLE items; --": 1}}, "dotted name"),
    ({"payload": {"colour": {"nested": 1}}}, "not a JSON scalar"),
    ({"modality": 3}, "must be strings"),
    ({"payload": {"n": 10 ** 30}}, "64-bit range"),
    ({"modality": [f"m{i}" for i in range(129)]}, "over the limit"),
])
def test_malformed_filters_are_refused_alike(small, flt, message):
    with pytest.raises(IndexInputError, match=message):
        small.search(np.ones(8, np.float32), k=1, filter=flt)


def test_a_milvus_filter_is_digests_only_whatever_the_values_hold():
    expr = filter_expression({"modality": 'x" or 1==1 or "', "payload": {"k": "\\\n'"}})
    assert expr.count("array_contains_any(terms, [") == 2
    assert set(expr) <= set('array_contains_any(terms, [" ]),0123456789abcdef')


def test_metadata_round_trips_exactly(small):
    for (i, meta), item in zip(ROWS, small.get([r[0] for r in ROWS])):
        assert item.id == i and item.metadata == {**meta, "payload": meta["payload"]}
    assert small.get(["zz"]) == [None]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_long_clip_is_found_by_its_window_with_the_span(make_index, vectors, backend):
    ix = make_index("flat", backend=backend)
    x = vectors(40)
    ix.upsert([f"v{i}" for i in range(30)], x[:30])
    pooled = x[30:33].mean(axis=0)
    ix.upsert(["clip"], pooled[None], [{"modality": "audio"}], segments=[([(0, 10), (10, 20), (20, 30)], x[30:33])])
    hit = ix.search(x[31], k=3)[0][0]
    assert hit.id == "clip" and hit.span == (10.0, 20.0)
    assert len(ix) == 31 and ix.stats()["windows"] == 3
    # a replace without windows drops the old ones; a delete drops the item and its windows
    ix.upsert(["clip"], x[35:36])
    assert ix.stats()["windows"] == 0 and ix.search(x[31], k=1)[0][0].span is None
    ix.upsert(["clip"], pooled[None], segments=[([(0, 1), (1, 2)], x[30:32])])
    assert ix.delete(["clip"]) == 1
    assert ix.stats()["windows"] == 0 and "clip" not in [h.id for h in ix.search(x[31], k=31)[0]]


@pytest.mark.parametrize("uri_of", [lambda p: str(p / "ix"), lambda p: f"milvus-lite://{p}/ix.db"])
def test_an_index_reopens_with_its_items_and_settings(tmp_path, vectors, uri_of):
    uri = uri_of(tmp_path)
    x = vectors(200)
    ix = open_index(uri, dim=64, kind="hnsw", prefixes=(16,))
    ix.upsert([f"v{i}" for i in range(200)], x, [{"modality": "image", "payload": {"n": i}} for i in range(200)])
    ix.delete(["v0"])
    ix.close()
    ix = open_index(uri)
    try:
        assert (ix.dim, ix.kind, len(ix)) == (64, "hnsw", 199)
        assert ix.get(["v0", "v7"])[0] is None and ix.get(["v7"])[0].metadata["payload"] == {"n": 7}
        assert ix.search(x[7], k=1, dim=16)[0][0].id == "v7"
    finally:
        ix.close()
    reopened = open_index(uri, dim=32, kind="flat")  # dim and kind only shape a new index
    assert (reopened.dim, reopened.kind) == (64, "hnsw")
    reopened.close()


def test_both_backends_rank_the_same_ids_for_the_same_data(make_index, vectors):
    x, q = vectors(2000), vectors(30, seed=9)
    meta = [{"modality": ("image", "text")[i % 2], "payload": {"g": i % 5}} for i in range(2000)]
    answers = {}
    for backend in BACKENDS:
        ix = make_index("flat", backend=backend, name=backend)
        ix.upsert([f"v{i}" for i in range(2000)], x, meta)
        answers[backend] = [
            [[h.id for h in row] for row in ix.search(q, k=10, **kw)]
            for kw in ({}, {"dim": 16}, {"filter": {"modality": "text", "payload": {"g": [1, 2]}}},
                       {"adaptive": {"prefix": 16, "shortlist": 200}})]
    assert answers["faiss"] == answers["milvus"]


def test_the_uri_names_the_backend(tmp_path):
    assert backend_of(tmp_path / "ix") == "faiss"
    assert backend_of("milvus-lite:///data/ix.db") == backend_of("http://milvus:19530") == "milvus"
    with pytest.raises(IndexInputError, match="unknown index URI scheme"):
        backend_of("s3://bucket/ix")
    with pytest.raises(IndexInputError, match="no index there yet"):
        open_index(f"milvus-lite://{tmp_path}/empty.db")
