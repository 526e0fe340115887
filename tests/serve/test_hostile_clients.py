"""Clients that no one here wrote, doing what a careless or hostile client does, against a real server on
localhost: calls without deadlines from raw stubs, request streams left open and silent, more calls than
the server takes, a 10 MB text beside small queries, filters too deep, too large or out of range, bad ids.
Each case asserts the status codes, and that health checks and Stats are answered while it goes on."""

from __future__ import annotations

import json
import queue
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omniembed.serve import Client
from omniembed.serve.embedding import ModelEmbedder
from omniembed.serve.stubs import pb2, pb2_grpc

from .conftest import DIM, TOKEN, unit_vectors

AUTH = [("authorization", f"Bearer {TOKEN}")]
Code = grpc.StatusCode


class Raw:
    """Bare generated stubs on their own channel: no deadline unless a call passes one, no client checks."""

    def __init__(self, target: str):
        self.channel = grpc.insecure_channel(target)
        self.stub = pb2_grpc.OmniEmbedStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    def __getattr__(self, method):
        return lambda request, **kw: getattr(self.stub, method)(request, metadata=AUTH, **kw)

    def health(self, timeout: float = 10) -> str:
        reply = self.health_stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def close(self):
        self.channel.close()


def _code(call, *args, **kwargs) -> tuple[Code, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details()


def _answered_while_busy(target: str, index_dim: int = DIM) -> None:
    """Health, Stats and a small vector search from a fresh channel all answer."""
    probe = Raw(target)
    try:
        assert probe.health(timeout=10) == "SERVING"
        assert probe.Stats(pb2.StatsRequest(), timeout=10).index_dim == index_dim
        q = pb2.Vector(values=unit_vectors(1, index_dim, seed=7)[0].tolist())
        probe.Search(pb2.SearchRequest(vector=q, k=1), timeout=10)
    finally:
        probe.close()


class SilentStream:
    """A request stream that sends `first` messages, then nothing until released."""

    def __init__(self, first=()):
        self.queue: queue.Queue = queue.Queue()
        for m in first:
            self.queue.put(m)

    def __iter__(self):
        while True:
            m = self.queue.get()
            if m is None:
                return
            yield m

    def release(self):
        self.queue.put(None)


def _open_streams(raw: Raw, n: int, method: str = "UpsertStream", first=()):
    """n streams held open from threads; returns (streams, threads, outcomes)."""
    streams, threads, outcomes = [], [], []

    def run(s):
        try:
            result = getattr(raw.stub, method)(iter(s), metadata=AUTH, timeout=60)
            if method == "EmbedStream":
                result = list(result)
            outcomes.append(("ok", result))
        except grpc.RpcError as exc:
            outcomes.append((exc.code(), exc.details()))

    for _ in range(n):
        s = SilentStream(first)
        t = threading.Thread(target=run, args=(s,), daemon=True)
        t.start()
        streams.append(s)
        threads.append(t)
    return streams, threads, outcomes


def _wait_active(server, n: int) -> None:
    """Until the server counts n calls in progress (the streams reached their handlers)."""
    import time

    for _ in range(500):
        if server.servicer.gate.active >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"only {server.servicer.gate.active} of {n} calls reached the server")


def test_more_idle_streams_than_worker_threads_cost_the_server_nothing(make_server):
    server = make_server(workers=2, max_calls=256)
    raw = Raw(server.target)
    streams, threads, outcomes = _open_streams(raw, 40)  # 20x the threads that do the work
    try:
        _wait_active(server, 40)
        _answered_while_busy(server.target)
        with Client(server.target, token=TOKEN, timeout=10) as c:
            assert c.upsert(["x"], unit_vectors(1, seed=1)) == 1
            assert c.search(unit_vectors(1, seed=1)[0], k=1)[0].id == "x"
    finally:
        for s in streams:
            s.release()
        for t in threads:
            t.join(30)
        raw.close()
    assert all(o[0] == "ok" and o[1].upserted == 0 for o in outcomes)


def test_calls_past_the_cap_are_resource_exhausted_while_health_and_stats_answer(make_server):
    server = make_server(max_calls=4)
    raw = Raw(server.target)
    streams, threads, _ = _open_streams(raw, 4)
    try:
        _wait_active(server, 4)
        code, msg = _code(raw.Search, pb2.SearchRequest(vector=pb2.Vector(values=[1.0] * DIM), k=1), timeout=10)
        assert code == Code.RESOURCE_EXHAUSTED and "--max-calls" in msg
        assert raw.health() == "SERVING"
        assert raw.Stats(pb2.StatsRequest(), timeout=10).index_dim == DIM
    finally:
        for s in streams:
            s.release()
        for t in threads:
            t.join(30)
    # with the streams gone the server takes calls again
    assert raw.Search(pb2.SearchRequest(vector=pb2.Vector(values=[1.0] * DIM), k=1), timeout=10) is not None
    raw.close()


def test_a_stream_silent_past_the_idle_limit_is_closed_and_keeps_what_it_sent(make_server):
    server = make_server(stream_idle_s=0.5)
    raw = Raw(server.target)
    first = pb2.UpsertRequest(items=[pb2.UpsertItem(id="early", vector=pb2.Vector(values=unit_vectors(1)[0].tolist()))])
    streams, threads, outcomes = _open_streams(raw, 1, first=[first])
    threads[0].join(30)
    streams[0].release()
    (code, msg), = outcomes
    assert code == Code.DEADLINE_EXCEEDED and "no message for 0.5 s after message 1" in msg
    with Client(server.target, token=TOKEN, timeout=10) as c:
        assert [s.id for s in c.get(["early"])] == ["early"]  # the chunk applied before the silence stays
    _answered_while_busy(server.target)
    raw.close()


@pytest.mark.parametrize("payload_json, problem", [
    ('{"a":' + "[" * 1000 + "]" * 1000 + "}", "nested too deeply"),
    ('{"n": ' + str(10 ** 30) + "}", "outside the 64-bit range"),
    (json.dumps({"n": list(range(1000))}), "over the limit of 128"),
])
def test_deep_huge_and_long_filters_are_invalid_argument_from_a_raw_stub(server, payload_json, problem):
    raw = Raw(server.target)
    q = pb2.Vector(values=unit_vectors(1)[0].tolist())
    request = pb2.SearchRequest(vector=q, k=1, filter=pb2.Filter(payload_json=payload_json))
    code, msg = _code(raw.Search, request)  # no deadline
    assert code == Code.INVALID_ARGUMENT and problem in msg, msg
    _answered_while_busy(server.target)
    raw.close()


@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "x" * (1 << 20)])
def test_bad_ids_are_invalid_argument_from_a_raw_stub(server, bad):
    raw = Raw(server.target)
    item = pb2.UpsertItem(id=bad, vector=pb2.Vector(values=unit_vectors(1)[0].tolist()))
    code, msg = _code(raw.Upsert, pb2.UpsertRequest(items=[item]))
    assert code == Code.INVALID_ARGUMENT and "items[0].id" in msg
    assert raw.Stats(pb2.StatsRequest()).count == 0
    raw.close()


# ---- with a model -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tiny_bundle):
    return ModelEmbedder.load(tiny_bundle, threads=1)


@pytest.fixture
def model_server(make_server, model):
    return make_server(embedder=model, dim=model.full_dim)


def test_no_deadline_calls_from_raw_stubs_succeed(model_server, model):
    raw = Raw(model_server.target)
    text = pb2.Item(text="a red square")
    assert len(raw.Embed(pb2.EmbedRequest(items=[text])).vectors) == 1
    assert len(list(raw.EmbedStream(iter([pb2.EmbedRequest(items=[text])])))) == 1
    assert raw.Upsert(pb2.UpsertRequest(items=[pb2.UpsertItem(id="t", item=text)])).upserted == 1
    assert raw.UpsertStream(iter([pb2.UpsertRequest(items=[pb2.UpsertItem(id="u", item=text)])])).upserted == 1
    assert raw.Search(pb2.SearchRequest(item=text, k=2)).hits[0].id in ("t", "u")
    raw.close()


def test_a_10_mb_text_is_cut_and_reported_while_small_queries_and_health_answer(model_server, model):
    raw = Raw(model_server.target)
    big = "a large green triangle moving slowly to the left " * (10_000_000 // 50)
    done = {}

    def send_big():
        done["reply"] = raw.Embed(pb2.EmbedRequest(items=[pb2.Item(text=big)]), timeout=120)

    sender = threading.Thread(target=send_big)
    sender.start()
    small = [raw.Search(pb2.SearchRequest(item=pb2.Item(text="a red square"), k=1), timeout=60) for _ in range(5)]
    assert raw.health() == "SERVING" and len(small) == 5
    sender.join(120)
    reply = done["reply"]
    assert list(reply.truncated) == [0] and len(reply.vectors[0].values) == model.full_dim
    # cut in its bytes before parsing (serve/textcut.py), it embeds as the whole text does in process
    whole = model.embedder.embed([big])[0]
    assert np.allclose(np.asarray(reply.vectors[0].values), whole, atol=1e-6)
    trimmer = model_server.servicer.trimmer
    if trimmer._trim is not None:  # glibc: the memory of the large request is handed back soon after
        for _ in range(300):
            if trimmer.trims:
                break
            time.sleep(0.02)
        assert trimmer.trims >= 1
    _answered_while_busy(model_server.target, model.full_dim)
    raw.close()


def test_a_long_text_that_is_not_utf8_past_the_part_the_model_reads_is_invalid_argument(model_server, model):
    cut_at = model.text_bytes
    good = pb2.EmbedRequest(items=[pb2.Item(text="a red square " * (cut_at // 6))]).SerializeToString()
    bad = good[:-5] + b"\xff" + good[-4:]  # the same length, one byte past the cut not UTF-8
    with grpc.insecure_channel(model_server.target) as channel:
        call = channel.unary_unary("/omniembed.v1.OmniEmbed/Embed")  # raw bytes: the client cannot check them
        assert len(pb2.EmbedResponse.FromString(call(good, metadata=AUTH, timeout=60)).vectors) == 1
        with pytest.raises(grpc.RpcError) as info:
            call(bad, metadata=AUTH, timeout=60)
    assert info.value.code() == Code.INVALID_ARGUMENT
    assert "not a valid EmbedRequest" in info.value.details() and "UTF-8" in info.value.details()
    _answered_while_busy(model_server.target, model.full_dim)


def test_int8_and_binary_encodings_follow_the_documented_rule(model_server, model):
    from omniembed.serve import codes

    texts = ["a red square", "a blue circle moving up", "a tone"]
    with Client(model_server.target, token=TOKEN, timeout=60) as c:
        full = c.embed(texts)
        q, scales = c.embed(texts, encoding="int8")
        bits = c.embed(texts, dim=32, encoding="binary")
    assert q.dtype == np.int8 and q.shape == full.shape and np.abs(q).max() == 127
    assert np.abs(codes.from_int8(q, scales) - full).max() <= scales.max() / 2 + 1e-6
    prefix = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    assert bits.shape == (3, 4) and np.array_equal(codes.from_bits(bits, 32) > 0, prefix > 0)
    raw = Raw(model_server.target)
    code, msg = _code(raw.Embed, pb2.EmbedRequest(items=[pb2.Item(text="x")], encoding=7))
    assert code == Code.INVALID_ARGUMENT and "encoding=7" in msg
    raw.close()


def test_bytes_that_are_not_a_request_message_are_invalid_argument(server):
    with grpc.insecure_channel(server.target) as channel:
        call = channel.unary_unary("/omniembed.v1.OmniEmbed/Search")  # no serializer: raw bytes on the wire
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff\xff\xff\xff not protobuf", metadata=AUTH, timeout=10)
    assert info.value.code() == Code.INVALID_ARGUMENT and "not a valid SearchRequest" in info.value.details()
    _answered_while_busy(server.target)
