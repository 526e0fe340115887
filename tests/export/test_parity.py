"""ONNX Runtime vs torch on the same inputs, for every modality and interleaved documents, at several batch
sizes and lengths. The torch side is omniembed.embed.Embedder over the run the bundle was exported from
(tiny_run); the runtime side is omniembed.runtime.Embedder over the bundle (tiny_bundle).

Three figures per input set:
- the trunk + embedding head graph: the same ids in both give cosine >= 0.999 (no exception allowed);
- the tokenizer encoder graphs: >= 99% of ids equal. A VQ code whose two nearest codebook entries are within
  float rounding of each other (restarted near-duplicate codes of a briefly trained codebook) may flip;
- end to end, raw bytes in: cosine >= 0.999 wherever the ids agree, and >= 0.98 where a code flipped.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from omniembed.data.manifest import Document
from omniembed.export import id_agreement
from omniembed.media import SAMPLE_RATE, decode_audio, encode_audio, encode_image
from omniembed.runtime import Embedder

MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def runtime(tiny_bundle):
    return Embedder.load(tiny_bundle, providers=["CPUExecutionProvider"], threads=1)


@pytest.fixture(scope="module")
def reference(tiny_bundle):
    from omniembed.model.embedder import TorchEmbedder
    from omniembed.train.rundir import load_run

    return TorchEmbedder.from_run(load_run(tiny_bundle.run_dir))


@pytest.fixture(autouse=True)
def _torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cosines(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def assert_parity(runtime, reference, inputs, dim=None, batch_size=32):
    want_ids = [reference.token_ids(x) for x in inputs]
    got_ids = runtime.tokenize(inputs)
    assert id_agreement(want_ids, got_ids) >= 0.99
    want = reference.embed(inputs, dim=dim)
    same_ids = runtime.embed_ids(want_ids, dim=dim, batch_size=batch_size)
    assert cosines(same_ids, want).min() >= MIN_COSINE
    got = runtime.embed(inputs, dim=dim, batch_size=batch_size)
    assert got.shape == want.shape
    agree = np.array([a == b for a, b in zip(want_ids, got_ids)])
    cos = cosines(got, want)
    assert cos[agree].min(initial=1.0) >= MIN_COSINE
    assert cos.min() >= 0.98
    return want_ids


def media(world, view, n):
    return [Path(it.media[view].source) for it in world.items if view in it.media][:n]


def test_text_matches_torch_at_batch_sizes_1_3_and_8(runtime, reference, synth_world):
    captions = [t for it in synth_world.items for t in it.texts]
    texts = [captions[0], "", "x" * 3, " ".join(captions[:40])] + captions[1:5]  # empty, tiny, cut to max_len
    for n, batch in ((1, 1), (3, 2), (8, 3)):
        ids = assert_parity(runtime, reference, texts[:n], batch_size=batch)
    assert len(set(map(len, ids))) >= 4  # really several lengths


def test_images_as_bytes_and_paths_of_odd_sizes_match_torch(runtime, reference, synth_world):
    paths = media(synth_world, "image", 6)
    rng = np.random.default_rng(1)
    odd = [encode_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((17, 50), (64, 31), (9, 9))]
    for inputs, batch in (([paths[0]], 1), ([p.read_bytes() for p in paths[:3]] + paths[3:] + odd, 4)):
        assert_parity(runtime, reference, inputs, batch_size=batch)


def test_audio_clips_of_several_lengths_match_torch(runtime, reference, synth_world):
    waves = [decode_audio(p) for p in media(synth_world, "audio", 3)]
    clips = [waves[0], waves[1][:6401], waves[2][:int(0.3 * SAMPLE_RATE)], waves[0][:20000]]
    inputs = [encode_audio(c, SAMPLE_RATE, "wav") for c in clips]  # real WAV bytes
    ids = assert_parity(runtime, reference, inputs, batch_size=3)
    assert len(set(map(len, ids))) == 4


def test_videos_match_torch_frames_and_soundtrack(runtime, reference, synth_world):
    paths = media(synth_world, "video", 4)
    ids = assert_parity(runtime, reference, [paths[0], paths[1].read_bytes(), paths[2], paths[3]], batch_size=3)
    vocab = runtime.vocab
    assert all(vocab.special("<frame>") in s and vocab.special("<audio>") in s for s in ids)


def test_interleaved_documents_match_torch(runtime, reference, synth_world):
    docs = [r for r in synth_world.train + synth_world.heldout if isinstance(r, Document)][:4]
    inputs = [[s.text if s.media is None else Path(s.media.source) for s in d.segments] for d in docs]
    assert_parity(runtime, reference, inputs, batch_size=3)


def test_every_modality_in_one_batch_matches_torch_at_each_matryoshka_dim(runtime, reference, synth_world):
    item = next(it for it in synth_world.items if {"image", "audio", "video"} <= set(it.media) and it.texts)
    image, audio, video = (Path(item.media[v].source) for v in ("image", "audio", "video"))
    inputs = [item.texts[0], image, audio, video, [item.texts[0], image, "and", audio]]
    for dim in runtime.dims:
        assert_parity(runtime, reference, inputs, dim=dim)
