"""The embed paths against a real server running an exported bundle (tests/conftest.py's tiny_bundle):
Embed, EmbedStream, Search and Upsert with items of every modality; results equal the in-process
runtime's; corrupt media; deadlines; 16 concurrent clients through the micro-batcher."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from omniembed.index import Index
from omniembed.media import encode_audio, encode_image, encode_video
from omniembed.serve import Client
from omniembed.serve.embedding import ModelEmbedder
from omniembed.serve.server import Server
from omniembed.serve.stubs import pb2, pb2_grpc

TOKEN = "embed-token"


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return ModelEmbedder.load(tiny_bundle, threads=1)


@pytest.fixture(scope="module")
def media():
    rng = np.random.default_rng(0)
    pixels = np.zeros((48, 48, 3), np.uint8)
    pixels[8:40, 8:40] = (220, 30, 30)  # a red square
    t = np.arange(16000) / 16000
    wave = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    frames = np.stack([np.roll(pixels, 4 * i, axis=1) for i in range(8)])  # moving right
    return {
        "image": encode_image(pixels),
        "image2": encode_image(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8), "jpeg"),
        "audio": encode_audio(wave, 16000),
        "video": encode_video(frames, fps=8, audio=wave[:16000]),
    }


@pytest.fixture
def make_model_server(make_server, model):
    def make(**config) -> Server:
        return make_server(embedder=model, dim=model.full_dim, **{"token": TOKEN, "grace_s": 5.0, **config})

    return make


@pytest.fixture
def client(make_model_server):
    with Client(make_model_server().target, token=TOKEN, timeout=120) as c:
        yield c


def _items(media):
    return ["a small red square", {"image": media["image"]}, {"audio": media["audio"]}, {"video": media["video"]},
            ["a red square", {"image": media["image2"]}, "and a tone", {"audio": media["audio"]}]]


def _runtime_inputs(media):
    return ["a small red square", {"image": media["image"]}, {"audio": media["audio"]}, {"video": media["video"]},
            ["a red square", {"image": media["image2"]}, "and a tone", {"audio": media["audio"]}]]


def test_embed_of_every_modality_equals_the_in_process_runtime(client, model, media):
    got = client.embed(_items(media))
    expected = model.embedder.embed(_runtime_inputs(media))
    assert got.shape == (5, model.full_dim)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_embed_at_a_matryoshka_dim_returns_unit_prefix_vectors(client, model, media):
    dim = model.dims[0]
    got = client.embed(["a blue circle", {"image": media["image"]}], dim=dim)
    full = model.embedder.embed(["a blue circle", {"image": media["image"]}])
    prefix = full[:, :dim] / np.linalg.norm(full[:, :dim], axis=1, keepdims=True)
    assert got.shape == (2, dim)
    np.testing.assert_allclose(got, prefix, atol=1e-5)


def test_embed_past_the_model_dim_is_invalid_argument(client, model):
    with pytest.raises(grpc.RpcError) as info:
        client.embed(["x"], dim=model.full_dim + 1)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == f"dim={model.full_dim + 1} exceeds the model's embedding dim {model.full_dim}"


def test_corrupt_media_is_invalid_argument_naming_the_item_and_the_server_stays_healthy(client, media):
    broken_png = media["image"][: len(media["image"]) // 2]
    for items, field in (
        (["fine", {"image": broken_png}], "items[1] (image)"),
        (["fine", {"audio": b"RIFF\x00\x00garbage"}], "items[1] (audio)"),
        ([["caption", {"video": b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40}]], "items[0].document.segments[1] (video)"),
        ([{"image": media["audio"]}], "items[0] (image)"),  # a WAV sent as an image
        # several media items: decoded together by the decoding workers, the bad one still named
        ([{"image": media["image"]}, {"audio": media["audio"]}, {"video": media["video"]}, {"image": broken_png}],
         "items[3] (image)"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            client.embed(items)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith(field + ": "), info.value.details()
    assert client.health() == "SERVING"
    assert client.embed(["still works"]).shape[0] == 1


def test_empty_items_and_segments_are_invalid_argument(client):
    with pytest.raises(grpc.RpcError) as info:
        client.embed(["ok", "   "])
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "items[1].text is empty or only whitespace")
    with pytest.raises(grpc.RpcError) as info:
        client.embed([{"image": b""}])
    assert info.value.details() == "items[0].image has no bytes"


def test_upsert_items_then_search_by_each_modality_finds_them(client, media):
    ids = ["text", "image", "audio", "video", "doc"]
    assert client.upsert(ids, items=_items(media)) == 5
    for query, expected in zip(_items(media), ids):
        hits = client.search(query, k=1)
        assert hits[0].id == expected and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert client.get(["video"])[0].metadata["modality"] == "video"
    assert client.get(["doc"])[0].metadata["modality"] == "document"
    only_images = client.search("a small red square", k=5, filter={"modality": "image"})
    assert [h.id for h in only_images] == ["image"]


def test_upsert_mixes_embedded_items_and_given_vectors(client, model, media):
    v = np.random.default_rng(3).standard_normal(model.full_dim).astype(np.float32)
    client.upsert(["given"], v[None])
    client.upsert(["embedded"], items=[{"image": media["image"]}], metadata=[{"uri": "red.png"}])
    assert client.search(v, k=1)[0].id == "given"
    item = client.get(["embedded"])[0]
    assert item.metadata == {"modality": "image", "uri": "red.png", "payload": {}}
    np.testing.assert_allclose(item.vector, model.embedder.embed([{"image": media["image"]}])[0], atol=1e-5)


def test_embed_stream_equals_one_embed_call(client, media):
    items = [f"caption number {i}" for i in range(10)] + [{"image": media["image"]}]
    streamed = client.embed_stream(items, chunk=3)
    assert streamed.shape[0] == 11
    np.testing.assert_allclose(streamed, client.embed(items), atol=1e-5)


def test_search_by_text_at_a_prefix_dim(client, model):
    client.upsert(["a", "b"], items=["a red circle", "a blue square"])
    hits = client.search("a red circle", k=2, dim=model.dims[0])
    assert hits[0].id == "a"


def test_sixteen_concurrent_clients_embed_exactly_what_sequential_calls_embed(make_model_server, media):
    server = make_model_server(max_batch=16, max_wait_ms=20)
    requests = [[f"item {w} {j}" for j in range(w % 3 + 1)] + ([{"image": media["image"]}] if w % 4 == 0 else [])
                for w in range(16)]
    with Client(server.target, token=TOKEN, timeout=120) as c:
        sequential = [c.embed(r) for r in requests]
        before = c.stats()
    results, errors = [None] * 16, []
    barrier = threading.Barrier(16)

    def worker(w):
        try:
            with Client(server.target, token=TOKEN, timeout=120) as mine:
                barrier.wait()
                results[w] = mine.embed(requests[w])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, want in zip(results, sequential):
        np.testing.assert_allclose(got, want, atol=1e-5)
    with Client(server.target, token=TOKEN) as c:
        after = c.stats()
    items = after["embedded_items"] - before["embedded_items"]
    calls = after["embed_batches"] - before["embed_batches"]
    assert items == sum(len(r) for r in requests)
    assert calls < 16  # concurrent requests shared model calls


def test_an_embed_whose_deadline_passes_in_the_queue_is_dropped_unembedded(make_model_server):
    server = make_model_server(max_batch=32, max_wait_ms=0, max_items=100_000)
    long_text = " ".join(["a large green triangle moving slowly to the left"] * 30)  # max_tokens long
    with Client(server.target, token=TOKEN, timeout=300) as c:
        t0 = time.perf_counter()
        c.embed([long_text] * 32)
        per_item = (time.perf_counter() - t0) / 32
        n_busy = int(min(20_000, max(64, 1.5 / per_item)))  # about 1.5 s of model work, whatever this CPU does
        before = c.stats()["embedded_items"]
        busy = threading.Thread(target=c.embed, args=([long_text] * n_busy,))
        busy.start()
        # Once the batcher embeds the big job's first items, the rest of it holds the batcher for ~1.5 s. (Its
        # texts are prepared in the work pool first, which under load can take longer than any fixed sleep.)
        t_wait = time.monotonic()
        while c.stats()["embedded_items"] == before and time.monotonic() - t_wait < 120:
            time.sleep(0.01)
        with pytest.raises(grpc.RpcError) as info:
            c.embed(["too late"], timeout=0.3)
        busy.join()
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert c.stats()["embedded_items"] - before == n_busy  # "too late" never reached the model


def test_sigterm_lets_an_in_flight_embedding_upsert_finish_and_persists_it(tiny_bundle, tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys

    index_dir = tmp_path / "ix"
    proc = subprocess.Popen(
        [sys.executable, "-m", "omniembed.serve", "--bundle", os.fspath(tiny_bundle), "--index", str(index_dir),
         "--port", "0", "--host", "127.0.0.1", "--threads", "1", "--max-items", "100000", "--grace", "120",
         "--log-level", "WARNING"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    line = proc.stdout.readline()
    assert "listening on" in line, proc.stderr.read()
    target = re.search(r"listening on (\S+)", line).group(1)
    long_text = " ".join(["a small blue circle bouncing up and down"] * 30)
    with Client(target, timeout=300, retries=0) as c:
        t0 = time.perf_counter()
        c.embed([long_text] * 32)
        n = int(min(20_000, max(64, 1.5 / ((time.perf_counter() - t0) / 32))))  # ~1.5 s of model work
        done = {}
        writer = threading.Thread(target=lambda: done.update(
            n=c.upsert([f"t{i}" for i in range(n)], items=[f"{long_text} {i}" for i in range(n)])))
        writer.start()
        time.sleep(0.3)  # the upsert is being embedded now
        proc.send_signal(signal.SIGTERM)
        writer.join()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert done.get("n") == n  # acknowledged although shutdown began while it ran
    with Index.open(index_dir) as index:
        assert len(index) == n


def test_calls_without_a_deadline_get_the_servers_limit_not_an_error(make_model_server, media):
    # most gRPC clients send no deadline; gRPC then reports centuries remaining
    server = make_model_server()
    auth = [("authorization", f"Bearer {TOKEN}")]
    with grpc.insecure_channel(server.target) as channel:
        stub = pb2_grpc.OmniEmbedStub(channel)
        items = [pb2.Item(text="a red square"), pb2.Item(image=media["image"]), pb2.Item(audio=media["audio"])]
        reply = stub.Embed(pb2.EmbedRequest(items=items), metadata=auth)
        assert len(reply.vectors) == 3
        streamed = list(stub.EmbedStream(iter([pb2.EmbedRequest(items=items[:1])]), metadata=auth))
        assert len(streamed) == 1
        found = stub.Search(pb2.SearchRequest(item=pb2.Item(text="a red square"), k=1), metadata=auth)
        assert found is not None
