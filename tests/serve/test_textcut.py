"""Long texts cut in a request's bytes before parsing (serve/textcut.py): what is kept, what is left alone, and
that the part cut off is still held to UTF-8."""

from __future__ import annotations

import asyncio

import pytest

from omniembed.serve import textcut
from omniembed.serve.stubs import pb2
from omniembed.serve.textcut import TextTooLong, check_tails, cut_texts, spec_for

LIMIT = 64


def _cut(message, limit: int = LIMIT):
    raw = message.SerializeToString()
    out, tails = cut_texts(raw, spec_for(type(message).DESCRIPTOR), limit)
    return raw, out, tails, type(message).FromString(out)


def test_every_text_of_items_documents_and_upserts_is_cut_to_the_limit_and_nothing_else_changes():
    long = "é" * 40 + "plain words " * 50  # 80 bytes of two-byte characters first: a cut must not split one
    image = bytes(range(256)) * 8
    request = pb2.UpsertRequest(segments=True, items=[
        pb2.UpsertItem(id="a" * 100, item=pb2.Item(text=long), metadata=pb2.Metadata(uri="u" * 200)),
        pb2.UpsertItem(id="b", item=pb2.Item(document=pb2.Document(segments=[
            pb2.Segment(text="short"), pb2.Segment(image=image), pb2.Segment(text=long)]))),
        pb2.UpsertItem(id="c", vector=pb2.Vector(values=[0.5] * 40)),
    ])
    raw, out, tails, cut = _cut(request)
    assert len(out) < len(raw) and len(tails) == 2
    first, doc = cut.items[0].item.text, cut.items[1].item.document.segments
    for kept, tail in ((first, tails[0]), (doc[2].text, tails[1])):
        assert long.startswith(kept) and LIMIT - 3 <= len(kept.encode()) <= LIMIT
        assert kept.encode() + bytes(tail) == long.encode()
    # ids, metadata, media, vectors and flags are not texts: they come through as sent
    assert cut.items[0].id == "a" * 100 and cut.items[0].metadata.uri == "u" * 200
    assert doc[0].text == "short" and doc[1].image == image and list(cut.items[2].vector.values) == [0.5] * 40
    assert cut.segments is True and cut.items[1].id == "b"


@pytest.mark.parametrize("message, item", [
    (pb2.EmbedRequest(items=[pb2.Item(text="x" * 1000)], dim=32, encoding=pb2.INT8), lambda m: m.items[0]),
    (pb2.SearchRequest(item=pb2.Item(text="x" * 1000), k=7, dim=16, adaptive=True,
                       filter=pb2.Filter(modality=["image"], payload_json='{"a": 1}')), lambda m: m.item),
])
def test_embed_and_search_requests_keep_every_other_field(message, item):
    _, _, tails, cut = _cut(message)
    expected = type(message)()
    expected.CopyFrom(message)
    item(expected).text = "x" * LIMIT
    assert cut == expected and bytes(tails[0]) == b"x" * (1000 - LIMIT)


def test_requests_without_a_long_text_come_back_as_the_same_bytes():
    short = pb2.EmbedRequest(items=[pb2.Item(text="t" * 30) for _ in range(20)])  # large in all, each text short
    raw = short.SerializeToString()
    assert len(raw) > LIMIT
    out, tails = cut_texts(raw, spec_for(pb2.EmbedRequest.DESCRIPTOR), LIMIT)
    assert out is raw and tails == []
    media = pb2.EmbedRequest(items=[pb2.Item(audio=b"\x00" * 5000)])
    out, tails = cut_texts(media.SerializeToString(), spec_for(pb2.EmbedRequest.DESCRIPTOR), LIMIT)
    assert pb2.EmbedRequest.FromString(out) == media and tails == []


@pytest.mark.parametrize("garbage", [b"\xff" * 100, b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 100,
                                     b"\x0a\x80" + b"x" * 100, b"\x0b" + b"x" * 100])
def test_bytes_that_are_not_a_message_come_back_unchanged_for_protobuf_to_refuse(garbage):
    out, tails = cut_texts(garbage, spec_for(pb2.EmbedRequest.DESCRIPTOR), 10)
    assert out is garbage and tails == []


def test_the_part_cut_off_must_still_be_utf8(monkeypatch):
    monkeypatch.setattr(textcut, "CHECK_CHUNK", 8)  # characters and bad bytes across chunk edges

    def check(tail: bytes):
        asyncio.run(check_tails([memoryview(tail)]))

    check("abcdéfghij€klmnop𝄞q".encode())
    for bad, at in ((b"abcdefgh\xff", 8), (b"abcdefg\xc3", 7), (b"abcdefg\xc3abc", 7), (b"\xed\xa0\x80", 0)):
        with pytest.raises(TextTooLong, match=f"byte {at} "):
            check(bad)
