"""The corpus stage's worker processes: the same tokenized corpus as the inline path, bad media skipped alike."""

import dataclasses

import numpy as np

from omniembed.train.corpus import build_corpus
from omniembed.data.manifest import Media
from omniembed.tokenization.document import DocumentTokenizer
from omniembed.tokenization.store import load_tokenizers


def _doc_tok(tiny_run):
    toks = load_tokenizers(tiny_run / "tokenizers")
    return DocumentTokenizer.from_tokenizers(toks.text, toks.image, toks.audio, video_fps=toks.config.video_fps), toks


def _same(a, b):
    assert [it.id for it in a.items] == [it.id for it in b.items]
    for x, y in zip(a.items, b.items):
        assert x.blocks.keys() == y.blocks.keys(), x.id
        for view in x.blocks:
            np.testing.assert_array_equal(x.blocks[view], y.blocks[view])
    assert len(a.documents) == len(b.documents)
    for x, y in zip(a.documents, b.documents):
        np.testing.assert_array_equal(x, y)


def test_two_workers_give_the_same_corpus_as_the_inline_path(tiny_run, synth_world):
    doc_tok, toks = _doc_tok(tiny_run)
    args = (synth_world.train, synth_world.heldout, doc_tok, toks.config.sample_rate, toks.config.video_fps)
    _same(build_corpus(*args, workers=1), build_corpus(*args, workers=2))


def test_a_corrupt_file_decoded_in_a_worker_skips_that_view_only(tiny_run, synth_world, tmp_path, caplog):
    doc_tok, toks = _doc_tok(tiny_run)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    first = synth_world.train[0]
    broken = dataclasses.replace(first, media={**first.media, "image": Media("image", str(bad))})
    train = [broken, *synth_world.train[1:]]
    corpus = build_corpus(train, [], doc_tok, toks.config.sample_rate, toks.config.video_fps, workers=2)
    item = next(it for it in corpus.items if it.id == first.id)
    assert "image" not in item.blocks and {"audio", "video"} <= set(item.blocks)
    assert "broken.png" in caplog.text and "skipping its image view" in caplog.text
