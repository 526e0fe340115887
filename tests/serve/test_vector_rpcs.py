"""Every vector-path RPC against a real server on localhost, checked against the index's own answers."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from omniembed.index import Index
from omniembed.serve import Client

from .conftest import DIM, TOKEN, unit_vectors


@pytest.fixture(params=["faiss", "milvus"])
def index_backend(request):
    """Every case here runs on a FAISS folder and on Milvus Lite (omniembed serve --index milvus-lite://...)."""
    return request.param


def _load(client, n=50, seed=0):
    vecs = unit_vectors(n, seed=seed)
    ids = [f"item-{i}" for i in range(n)]
    metas = [{"modality": "image" if i % 2 else "audio", "uri": f"file://{i}",
              "payload": {"colour": ["red", "green", "blue"][i % 3], "n": i}} for i in range(n)]
    assert client.upsert(ids, vecs, metadata=metas) == n
    return ids, vecs, metas


def test_upsert_then_search_by_vector_ranks_the_item_itself_first_with_its_metadata(client):
    ids, vecs, metas = _load(client)
    hits = client.search(vecs[7], k=5)
    assert [h.id for h in hits][0] == "item-7"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].metadata == {"modality": "image", "uri": "file://7", "payload": {"colour": "green", "n": 7}}
    assert len(hits) == 5 and all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_search_matches_in_process_index_results_exactly(server, client):
    ids, vecs, _ = _load(client)
    q = unit_vectors(3, seed=9)
    for row in q:
        expected = server.index.search(row, k=8)[0]
        got = client.search(row, k=8)
        assert [h.id for h in got] == [h.id for h in expected]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in expected], rtol=1e-6)


def test_search_filters_on_modality_and_payload(client):
    _load(client)
    hits = client.search(unit_vectors(1, seed=3)[0], k=50, filter={"modality": "image", "payload": {"colour": "red"}})
    assert hits and all(h.metadata["modality"] == "image" and h.metadata["payload"]["colour"] == "red" for h in hits)
    # items 3, 9, 15, ... are image (odd) and red (i % 3 == 0)
    assert sorted(int(h.id.split("-")[1]) for h in hits) == [i for i in range(50) if i % 2 and i % 3 == 0]


def test_search_at_a_prefix_dim_accepts_a_prefix_query_and_ranks_by_the_prefix(client):
    ids, vecs, _ = _load(client)
    full = client.search(vecs[4], k=3, dim=8)
    prefix_only = client.search(vecs[4][:8], k=3, dim=8)
    assert [h.id for h in full] == [h.id for h in prefix_only]
    assert full[0].id == "item-4"
    prefixes = vecs[:, :8] / np.linalg.norm(vecs[:, :8], axis=1, keepdims=True)
    q = prefixes[4]
    assert [h.id for h in full] == [ids[i] for i in np.argsort(-(prefixes @ q))[:3]]


def test_get_returns_stored_normalised_vectors_and_metadata_in_request_order(client):
    ids, vecs, metas = _load(client, n=5)
    items = client.get(["item-3", "item-0"])
    assert [i.id for i in items] == ["item-3", "item-0"]
    np.testing.assert_allclose(items[0].vector, vecs[3], atol=1e-6)
    assert items[1].metadata == {"modality": "audio", "uri": "file://0", "payload": {"colour": "red", "n": 0}}
    assert client.get(["item-1"], include_vectors=False)[0].vector is None


def test_upsert_replaces_an_existing_id(client):
    _load(client, n=5)
    new = unit_vectors(1, seed=42)[0]
    client.upsert(["item-2"], new[None], metadata=[{"uri": "replaced"}])
    item = client.get(["item-2"])[0]
    np.testing.assert_allclose(item.vector, new, atol=1e-6)
    assert item.metadata["uri"] == "replaced"
    assert client.stats()["count"] == 5


def test_delete_removes_items_and_reports_ids_that_were_not_stored(client):
    _load(client, n=5)
    result = client.delete(["item-1", "never-stored"])
    assert result.deleted == 1 and result.not_found == ["never-stored"]
    assert client.get(["item-1"], missing_ok=True) == []
    assert "item-1" not in [h.id for h in client.search(unit_vectors(1, seed=1)[0], k=10)]
    # deleting again is a no-op, which is why the client may retry it
    assert client.delete(["item-1"]).deleted == 0


def test_stats_reports_count_dim_kind_and_no_model(client, index_backend):
    _load(client, n=12)
    stats = client.stats()
    assert (stats["count"], stats["index_dim"], stats["index_kind"]) == (12, DIM, "flat")
    assert stats["embedder_loaded"] is False and stats["embed_dim"] == 0
    assert stats["index"]["count"] == 12
    if index_backend == "faiss":
        assert stats["index"]["lsn"] == 1  # one WAL record for the one upsert
    else:
        assert stats["index"]["backend"] == "milvus" and stats["index"]["windows"] == 0


def test_upsert_stream_stores_every_chunk(client):
    vecs = unit_vectors(700, seed=5)
    ids = [f"s{i}" for i in range(700)]
    assert client.upsert_stream(ids, vecs, chunk=128) == 700
    assert client.stats()["count"] == 700
    assert client.search(vecs[650], k=1)[0].id == "s650"


def test_health_check_serves_the_service_and_the_server(client):
    assert client.health() == "SERVING"
    assert client.health("omniembed.v1.OmniEmbed") == "SERVING"


def test_reflection_lets_a_client_with_no_stubs_call_stats(server, client):
    _load(client, n=3)
    channel = grpc.insecure_channel(server.target)
    db = ProtoReflectionDescriptorDatabase(channel)
    assert "omniembed.v1.OmniEmbed" in db.get_services()
    assert "grpc.health.v1.Health" in db.get_services()
    pool = descriptor_pool.DescriptorPool(db)
    service = pool.FindServiceByName("omniembed.v1.OmniEmbed")
    assert {m.name for m in service.methods} == {
        "Embed", "EmbedStream", "Search", "Upsert", "UpsertStream", "Delete", "Get", "Stats"}
    method = service.methods_by_name["Stats"]
    request_cls = GetMessageClass(method.input_type)
    response_cls = GetMessageClass(method.output_type)
    call = channel.unary_unary("/omniembed.v1.OmniEmbed/Stats", request_serializer=request_cls.SerializeToString,
                               response_deserializer=response_cls.FromString)
    reply = call(request_cls(), metadata=[("authorization", f"Bearer {TOKEN}")], timeout=10)
    assert reply.count == 3 and reply.index_dim == DIM
    channel.close()


def test_hnsw_server_answers_searches_like_its_index(make_server):
    server = make_server(index_kind="hnsw")
    with Client(server.target, token=TOKEN) as c:
        ids, vecs, _ = _load(c, n=200)
        for i in (0, 77, 199):
            assert c.search(vecs[i], k=1)[0].id == ids[i]


def test_stop_snapshots_the_index_so_reopening_needs_no_log_replay(make_server, index_backend):
    if index_backend != "faiss":
        pytest.skip("FAISS snapshots; Milvus persistence is in tests/index/test_backends.py and test_crash.py")
    server = make_server()
    with Client(server.target, token=TOKEN) as c:
        _load(c, n=20)
    root = server.index.root
    server.stop(grace=1)
    reopened = Index.open(root)
    try:
        assert len(reopened) == 20
        assert reopened.stats()["snapshot_gen"] >= 1  # a snapshot was taken on stop
        assert reopened.get(["item-19"])[0] is not None
    finally:
        reopened.close()
