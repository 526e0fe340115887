"""Decoding in worker processes (omniembed.media.pool.DecodePool) gives what decoding in-process gives."""

import os
from pathlib import Path

import numpy as np
import pytest

from omniembed.errors import MediaError
from omniembed.media import SAMPLE_RATE, decode_audio, encode_audio
from omniembed.media.pool import DecodePool
from omniembed.runtime import Embedder


@pytest.fixture(scope="module")
def pooled(tiny_bundle):
    emb = Embedder.load(tiny_bundle, threads=1, decode_workers=2)
    yield emb
    emb.close()


@pytest.fixture(scope="module")
def inline(tiny_bundle):
    return Embedder.load(tiny_bundle, threads=1, decode_workers=0)


@pytest.fixture(scope="module")
def batch(synth_world, tmp_path_factory):
    items = [it for it in synth_world.items if {"image", "audio", "video"} <= set(it.media)][:4]
    long_clip = tmp_path_factory.mktemp("pool") / "long.wav"
    wave = np.concatenate([decode_audio(it.media["audio"].source) for it in items * 3])  # ~24 s: windows
    long_clip.write_bytes(encode_audio(wave, SAMPLE_RATE, "wav"))
    out = ["a caption", long_clip]
    for it in items:
        out += [Path(it.media["image"].source), Path(it.media["audio"].source).read_bytes(),
                {"video": it.media["video"].source}, [it.texts[0], Path(it.media["image"].source)]]
    return out


def test_a_batch_decoded_by_workers_embeds_exactly_as_decoded_here(pooled, inline, batch):
    got = pooled.embed(batch)
    assert pooled.decode_pool.started >= 1  # the workers did decode this batch
    np.testing.assert_array_equal(got, inline.embed(batch))
    assert [e.ids for e in pooled.encode(batch)] == [e.ids for e in inline.encode(batch)]


def test_long_media_in_a_pooled_batch_keep_their_windows(pooled, inline, batch):
    (vectors, spans), *_ = pooled.embed_windows([batch[1], batch[2], batch[3]])
    want, want_spans = inline.embed_windows([batch[1]])[0]
    assert spans == want_spans and len(spans) > 1
    np.testing.assert_array_equal(vectors, want)


def test_a_bad_item_decoded_by_a_worker_is_named_by_its_place_in_the_batch(pooled, batch):
    bad = list(batch[2:5]) + [b"\x89PNG\r\n\x1a\n not really"] + list(batch[5:8])
    with pytest.raises(MediaError, match="input 3"):
        pooled.embed(bad)
    assert pooled.embed(batch[2:4]).shape == (2, pooled.dim)  # the workers still serve


def _exit_in_worker(parent: int) -> int:
    if os.getpid() != parent:
        os._exit(3)  # a worker dying mid-batch, as when the kernel kills it
    return parent


def test_a_worker_that_dies_costs_the_batch_a_fresh_pool_not_the_caller():
    pool = DecodePool(2)
    try:
        assert pool.map(_exit_in_worker, [os.getpid()] * 4) == [os.getpid()] * 4  # finished in-process
        assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]  # and new workers take the next batch
    finally:
        pool.close()


def test_no_workers_means_decoding_here():
    assert not DecodePool(0).worth(100) and not DecodePool(1).worth(100) and DecodePool(2).worth(2)


def test_concurrent_batches_share_the_workers_without_deadlock():
    import threading

    pool = DecodePool(2)
    results, errors = {}, []

    def run(t):
        try:
            results[t] = [pool.map(abs, list(range(-40, 0))) for _ in range(5)]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(6)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert not any(th.is_alive() for th in threads) and not errors
        assert all(r == [list(range(40, 0, -1))] * 5 for r in results.values()) and len(results) == 6
        assert pool.started <= 2
    finally:
        pool.close()


def test_wavs_at_the_models_rate_decode_here_and_other_wavs_in_the_workers(tiny_bundle, inline):
    from omniembed.media.framing import wav_layout

    rng = np.random.default_rng(0)
    at_rate = [encode_audio((0.2 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE, "wav")
               for _ in range(4)]
    stereo = (0.2 * rng.standard_normal((44100, 2))).astype(np.float32)
    resampled = [encode_audio(stereo, 44100, "wav") for _ in range(4)]
    assert wav_layout(at_rate[0])[1:] == (1, SAMPLE_RATE) and wav_layout(resampled[0])[1:] == (2, 44100)
    assert wav_layout(b"RIFF\x00\x00\x00\x00WAVE") is None and wav_layout(b"not a wav at all") is None
    emb = Embedder.load(tiny_bundle, threads=1, decode_workers=2)
    try:
        np.testing.assert_array_equal(emb.embed(at_rate), inline.embed(at_rate))
        assert emb.decode_pool.started == 0  # the pipe round trip would cost more than decoding them here
        np.testing.assert_array_equal(emb.embed(resampled), inline.embed(resampled))
        assert emb.decode_pool.started >= 1  # resampling is worth a worker
    finally:
        emb.close()
