"""Bad requests get the right status code and a message naming what was wrong; the server stays healthy."""

from __future__ import annotations

import socket
import threading
import time

import json

import grpc
import numpy as np
import pytest

from omniembed.index import Index
from omniembed.serve import Client
from omniembed.serve.server import Server, ServerConfig
from omniembed.serve.stubs import pb2, pb2_grpc

from .conftest import DIM, TOKEN, unit_vectors


@pytest.fixture(params=["faiss", "milvus"])
def index_backend(request):
    """Every case here runs on a FAISS folder and on Milvus Lite (omniembed serve --index milvus-lite://...)."""
    return request.param


def _status(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details()


@pytest.fixture
def raw(server):
    """A bare stub (no client-side checks) with the token, for requests the Client would never build."""
    channel = grpc.insecure_channel(server.target)
    stub = pb2_grpc.OmniEmbedStub(channel)
    md = [("authorization", f"Bearer {TOKEN}")]
    yield lambda method, request: getattr(stub, method)(request, metadata=md, timeout=10)
    channel.close()


@pytest.fixture
def client(server):
    """The module's client; after each test the same server must still be healthy and serving writes."""
    with Client(server.target, token=TOKEN, timeout=10) as c:
        yield c
        assert c.health() == "SERVING"
        c.upsert(["after-error"], unit_vectors(1, seed=99))
        assert c.search(unit_vectors(1, seed=99)[0], k=1)[0].id == "after-error"


def test_missing_token_is_unauthenticated(server, client):
    with Client(server.target) as anonymous:
        code, msg = _status(anonymous.stats)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "missing 'authorization: Bearer" in msg


def test_wrong_token_is_unauthenticated_on_unary_and_streaming_calls(server, client):
    with Client(server.target, token="guess") as intruder:
        code, msg = _status(intruder.search, unit_vectors(1)[0])
        assert (code, msg) == (grpc.StatusCode.UNAUTHENTICATED, "wrong bearer token")
        code, msg = _status(intruder.upsert_stream, ["a"], unit_vectors(1))
        assert (code, msg) == (grpc.StatusCode.UNAUTHENTICATED, "wrong bearer token")
    assert client.stats()["count"] == 0  # the refused stream stored nothing


def test_the_bearer_scheme_name_is_matched_case_insensitively(server, client):
    for scheme in ("bearer", "BEARER", "Bearer"):
        reply = client._stub.Stats(pb2.StatsRequest(), timeout=10, metadata=[("authorization", f"{scheme} {TOKEN}")])
        assert reply.index_dim == DIM
    with pytest.raises(grpc.RpcError) as info:
        client._stub.Stats(pb2.StatsRequest(), timeout=10, metadata=[("authorization", f"Basic {TOKEN}")])
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_and_reflection_need_no_token(server, client):
    with Client(server.target) as anonymous:
        assert anonymous.health() == "SERVING"


def test_wrong_vector_dim_on_upsert_names_the_item_and_both_sizes(client):
    vecs = np.concatenate([unit_vectors(2), np.ones((1, DIM))])  # fine
    client.upsert(["a", "b", "c"], vecs)
    bad = [pb2.UpsertItem(id="x", vector=pb2.Vector(values=[1.0] * DIM)),
           pb2.UpsertItem(id="y", vector=pb2.Vector(values=[1.0] * (DIM - 1)))]
    code, msg = _status(client._call, "Upsert", pb2.UpsertRequest(items=bad))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert msg == f"items[1].vector has {DIM - 1} values, expected {DIM}"
    assert client.get(["x"], missing_ok=True) == []  # nothing of a refused request is stored


def test_wrong_query_dim_is_invalid_argument(client):
    code, msg = _status(client.search, np.ones(DIM + 3, np.float32))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert msg == f"query vector has {DIM + 3} values; the index holds {DIM}-dim vectors"
    code, msg = _status(client.search, np.ones(DIM), dim=DIM + 1)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and f"exceeds the index's dim {DIM}" in msg


def test_nan_and_zero_vectors_are_refused(client):
    nan = np.ones(DIM, np.float32)
    nan[3] = np.nan
    assert _status(client.upsert, ["n"], nan[None]) == (
        grpc.StatusCode.INVALID_ARGUMENT, "items[0].vector contains NaN or infinity")
    assert _status(client.search, np.zeros(DIM)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "query vector is all zeros and has no direction to compare")


def test_empty_requests_are_invalid_argument_naming_the_field(raw, client):
    cases = {
        "Upsert": (pb2.UpsertRequest(), "items is empty: send at least one"),
        "Get": (pb2.GetRequest(), "ids is empty: name at least one id"),
        "Delete": (pb2.DeleteRequest(ids=["ok", ""]), "ids[1] is an empty string"),
        "Search": (pb2.SearchRequest(k=3), "query is empty: set item or vector"),
        "Embed": (pb2.EmbedRequest(), "items is empty: send at least one"),
    }
    for method, (request, message) in cases.items():
        code, msg = _status(raw, method, request)
        assert (method, code, msg) == (method, grpc.StatusCode.INVALID_ARGUMENT, message)
    code, msg = _status(raw, "Upsert", pb2.UpsertRequest(items=[pb2.UpsertItem(id="q")]))
    assert (code, msg) == (grpc.StatusCode.INVALID_ARGUMENT, "items[0] has neither item nor vector")
    code, msg = _status(raw, "Upsert", pb2.UpsertRequest(items=[pb2.UpsertItem(vector=pb2.Vector(values=[1] * DIM))]))
    assert (code, msg) == (grpc.StatusCode.INVALID_ARGUMENT, "items[0].id is empty")


def test_unknown_ids_on_get_are_not_found_and_named(client):
    client.upsert(["known"], unit_vectors(1))
    code, msg = _status(client.get, ["known", "ghost-1", "ghost-2"])
    assert code == grpc.StatusCode.NOT_FOUND
    assert msg == "2 of 3 ids are not stored: 'ghost-1', 'ghost-2'"
    assert [i.id for i in client.get(["known", "ghost-1"], missing_ok=True)] == ["known"]


def test_bad_metadata_and_filters_are_invalid_argument(raw, client):
    bad_meta = pb2.UpsertItem(id="m", vector=pb2.Vector(values=[1] * DIM), metadata=pb2.Metadata(payload_json="{oops"))
    code, msg = _status(raw, "Upsert", pb2.UpsertRequest(items=[bad_meta]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("items[0].metadata.payload_json is not valid JSON")
    code, msg = _status(client.search, unit_vectors(1)[0], filter={"payload": {"a b": 1}})
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "'a b' is not a dotted name" in msg


def test_duplicate_ids_in_one_upsert_are_invalid_argument(client):
    code, msg = _status(client.upsert, ["d", "d"], unit_vectors(2))
    assert (code, msg) == (grpc.StatusCode.INVALID_ARGUMENT, "id 'd' appears twice in one call")


def test_k_over_the_limit_and_too_many_items_are_refused(make_server):
    server = make_server(max_items=10, max_k=50)
    with Client(server.target, token=TOKEN) as c:
        code, msg = _status(c.search, unit_vectors(1)[0], k=51)
        assert (code, msg) == (grpc.StatusCode.INVALID_ARGUMENT, "k=51 exceeds the server's limit of 50")
        code, msg = _status(c.upsert, [f"i{n}" for n in range(11)], unit_vectors(11))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert msg == "11 items in one Upsert call; the limit is 10: split the request or use UpsertStream"
        assert c.upsert_stream([f"i{n}" for n in range(25)], unit_vectors(25), chunk=10) == 25


def test_oversize_message_is_resource_exhausted_and_the_server_carries_on(make_server):
    server = make_server(max_message_bytes=64 << 10)
    with Client(server.target, token=TOKEN) as c:
        big = unit_vectors(2000)  # ~130 KB of floats
        code, msg = _status(c.upsert, [f"b{i}" for i in range(2000)], big)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in msg
        assert c.upsert([f"b{i}" for i in range(100)], big[:100]) == 100
        assert c.health() == "SERVING"


def test_embed_without_a_model_is_failed_precondition(client):
    code, msg = _status(client.embed, ["a red circle"])
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "started without --bundle" in msg
    code, msg = _status(client.search, "a red circle")
    assert code == grpc.StatusCode.FAILED_PRECONDITION


def test_client_retries_unavailable_until_the_server_comes_up(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = []

    def start_late():
        time.sleep(0.5)
        index = Index.create(tmp_path / "late", dim=DIM)
        started.append(Server(index, None, ServerConfig(port=port)).start())

    thread = threading.Thread(target=start_late)
    thread.start()
    try:
        with Client(f"127.0.0.1:{port}", timeout=20, retries=8, backoff_s=0.05) as c:
            assert c.stats()["count"] == 0
            assert c.retried >= 1
    finally:
        thread.join()
        for s in started:
            s.stop(grace=0)


def test_client_does_not_retry_invalid_argument(client):
    _status(client.search, np.ones(3))
    assert client.retried == 0


def test_the_server_listens_on_this_machine_only_unless_told_otherwise():
    from omniembed.serve.__main__ import build_parser

    assert build_parser().parse_args(["--index", "ix"]).host == "127.0.0.1"


@pytest.mark.parametrize("bad,problem", [
    ("a\x00b", "holds the control character '\\x00' (U+0000)"),
    ("line\nbreak", "holds the control character '\\n' (U+000A)"),
    ("x" * (1 << 20), "is 1048576 bytes, over the limit of 512"),
])
def test_ids_with_control_characters_or_over_512_bytes_are_refused_naming_the_field(client, bad, problem):
    item = pb2.UpsertItem(id=bad, vector=pb2.Vector(values=[1.0] * DIM))
    code, msg = _status(client._call, "Upsert", pb2.UpsertRequest(items=[pb2.UpsertItem(
        id="fine", vector=pb2.Vector(values=[1.0] * DIM)), item]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith(f"items[1].id {problem}")
    code, msg = _status(client._call, "Get", pb2.GetRequest(ids=["fine", bad]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith(f"ids[1] {problem}")
    assert client.get(["fine"], missing_ok=True) == []  # nothing of the refused upsert was stored
    assert client.health() == "SERVING"


def test_ids_are_opaque_strings_so_path_like_ones_are_fine(client):
    client.upsert(["../etc/passwd", "a/b", "ünï ∞"], unit_vectors(3))
    assert sorted(h.id for h in client.get(["../etc/passwd", "a/b", "ünï ∞"])) == ["../etc/passwd", "a/b", "ünï ∞"]


def _deep(n: int) -> str:
    return '{"a":' * n + "1" + "}" * n


@pytest.mark.parametrize("payload,problem", [
    (_deep(1000), "is nested too deeply"),
    (_deep(40), "nested more than 32 levels deep"),
    ('{"n": 1000000000000000000000000000000}', "outside the 64-bit range filters compare"),
    ('{"blob": "' + "x" * 70000 + '"}', "over the limit of 65536"),
])
def test_payloads_the_filters_cannot_compare_or_that_are_too_deep_or_large_are_refused(client, payload, problem):
    item = pb2.UpsertItem(id="p", vector=pb2.Vector(values=[1.0] * DIM), metadata=pb2.Metadata(payload_json=payload))
    code, msg = _status(client._call, "Upsert", pb2.UpsertRequest(items=[item]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem in msg, msg
    assert client.health() == "SERVING"


@pytest.mark.parametrize("flt,problem", [
    (pb2.Filter(payload_json=_deep(1000)), "is nested too deeply"),
    (pb2.Filter(payload_json='{"n": 1000000000000000000000000000000}'), "outside the 64-bit range"),
    (pb2.Filter(payload_json=json.dumps({"n": list(range(999))})), "999 values, over the limit of 128"),
    (pb2.Filter(modality=[f"m{i}" for i in range(999)]), "999 values, over the limit of 128"),
    (pb2.Filter(payload_json=json.dumps({f"f{i}": list(range(100)) for i in range(20)})), "too many terms"),
])
def test_filters_too_deep_too_large_or_out_of_range_are_invalid_argument(client, flt, problem):
    client.upsert(["a"], unit_vectors(1))
    request = pb2.SearchRequest(vector=pb2.Vector(values=[1.0] * DIM), k=1, filter=flt)
    code, msg = _status(client._call, "Search", request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem in msg, msg
    assert client.health() == "SERVING"
