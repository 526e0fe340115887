"""DocumentTokenizer.encode_for_embedding: the one definition of the sequence the embedding head reads."""

import pytest

from omniembed.tokenization.document import DocumentError, DocumentTokenizer, TextSegment
from omniembed.tokenization.text import TextTokenizer
from omniembed.tokenization.vocab import Vocabulary


@pytest.fixture(scope="module")
def doc():
    text = TextTokenizer.train(["a red circle moves left", "a blue square"] * 20, 300)
    return DocumentTokenizer(Vocabulary(text.vocab_size, 16, 16), text)


def test_layout_is_bos_body_eos_embed(doc):
    body = doc.encode([TextSegment("a red circle")], bos=False, eos=False)
    ids = doc.encode_for_embedding([TextSegment("a red circle")])
    v = doc.vocab
    assert ids == [v.special("<bos>"), *body, v.special("<eos>"), v.special("<embed>")]


def test_a_long_body_is_cut_at_its_end_to_exactly_max_tokens_keeping_eos_and_embed(doc):
    full = doc.encode_for_embedding([TextSegment("a red circle moves left " * 20)])
    cut = doc.encode_for_embedding([TextSegment("a red circle moves left " * 20)], max_tokens=10)
    assert len(cut) == 10 and cut[:8] == full[:8] and cut[8:] == full[-2:]
    short = [TextSegment("red")]
    assert doc.encode_for_embedding(short, max_tokens=10) == doc.encode_for_embedding(short)


def test_max_tokens_below_four_is_refused(doc):
    with pytest.raises(DocumentError, match="max_tokens=3"):
        doc.encode_for_embedding([TextSegment("a red circle moves left")], max_tokens=3)
