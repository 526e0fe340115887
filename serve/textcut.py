"""Long texts cut in the request's bytes, before protobuf parses them.

The model reads a text only up to its window (a few thousand characters); the rest is cut before BPE anyway
(omniembed.tokenization.windows._cut_long_text). Parsing a 10 MB text first costs the event loop what the cut
saves later: protobuf validates and copies all of it holding the GIL (~10 ms), and every other call waits. So a
request larger than the limit is walked at the wire level (field headers only: a field's body is skipped by
its length), each `text` field of an Item or a document Segment longer than `limit` bytes is cut at a UTF-8
character boundary, and only the cut message is parsed.

What protobuf would have checked in the part cut off (that it is UTF-8) is still checked, by `check_tails`,
in chunks with the event loop free between them: a request whose text is not UTF-8 past the cut is refused
as before. The cut leaves at least as many characters as the model could use, so ids, vectors and the
`truncated` report are those of the whole text.
"""

from __future__ import annotations

import asyncio
import codecs

import numpy as np

from google.protobuf.descriptor import Descriptor, FieldDescriptor

TEXT_FIELDS = ("omniembed.v1.Item.text", "omniembed.v1.Segment.text")
CHECK_CHUNK = 1 << 20  # bytes of a cut-off tail checked between two turns of the event loop

_TEXT = "text"  # marks a field to cut in a spec; otherwise a spec maps field number -> sub-spec


class TextTooLong(ValueError):
    """A cut-off tail is not UTF-8: the request would not have parsed."""


def spec_for(descriptor: Descriptor, _seen: frozenset = frozenset()) -> dict:
    """Field number -> "text" (cut it) or the sub-spec of a message field that leads to a text field; only
    fields that lead to one are kept, so the walk skips everything else by its length."""
    spec = {}
    for field in descriptor.fields:
        if field.full_name in TEXT_FIELDS:
            spec[field.number] = _TEXT
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in _seen:
            sub = spec_for(field.message_type, _seen | {descriptor.full_name})
            if sub:
                spec[field.number] = sub
    return spec


def cut_texts(raw: bytes, spec: dict, limit: int) -> tuple[bytes, list[memoryview]]:
    """(raw with every spec'd text longer than `limit` bytes cut to at most `limit`, the cut-off tails).
    Bytes that are not a well-formed message come back unchanged: protobuf's parse then says what is wrong."""
    if len(raw) <= limit or not spec:
        return raw, []
    tails: list[memoryview] = []
    try:
        out = _rewrite(memoryview(raw), spec, limit, tails)
    except _Malformed:
        return raw, []
    return (raw, []) if out is None else (out, tails)


async def check_tails(tails: list[memoryview]) -> None:
    """Raise TextTooLong unless every tail is UTF-8 (each starts on a character boundary), yielding the event
    loop every CHECK_CHUNK bytes so other calls are served meanwhile. An ASCII chunk is told by numpy (a
    reduction without the GIL) and skipped; the others go through Python's UTF-8 decoder."""
    for tail in tails:
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        for start in range(0, len(tail), CHECK_CHUNK):
            chunk = tail[start:start + CHECK_CHUNK]
            last = start + CHECK_CHUNK >= len(tail)
            pending = decoder.getstate()[0]  # bytes of a character split across chunks
            if pending or np.frombuffer(chunk, np.uint8).max() >= 0x80:
                try:
                    decoder.decode(chunk, final=last)
                except UnicodeDecodeError as exc:
                    raise TextTooLong(f"a text is not valid UTF-8 (byte {start + exc.start - len(pending)} after "
                                      "the part the model reads)") from None
            if not last:
                await asyncio.sleep(0)


class _Malformed(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _boundary(body: memoryview, limit: int) -> int:
    """The largest cut <= limit that does not split a UTF-8 character (a continuation byte is 10xxxxxx)."""
    cut = limit
    while cut > 0 and limit - cut < 4 and body[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut


def _rewrite(buf: memoryview, spec: dict, limit: int, tails: list[memoryview]) -> bytes | None:
    """The message in `buf` with its long texts cut, or None when none is."""
    pieces: list = []
    pos, copied = 0, 0
    while pos < len(buf):
        key, after_key = _varint(buf, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, pos = _varint(buf, after_key)
        elif wire_type == 1:
            pos = after_key + 8
        elif wire_type == 5:
            pos = after_key + 4
        elif wire_type == 2:
            length, body = _varint(buf, after_key)
            end = body + length
            if end > len(buf):
                raise _Malformed
            sub = spec.get(field)
            new = None
            if length > limit and sub is _TEXT:  # a sub-message no longer than the limit holds no long text
                cut = _boundary(buf[body:end], limit)
                tails.append(buf[body + cut:end])
                new = buf[body:body + cut]
            elif length > limit and isinstance(sub, dict):
                new = _rewrite(buf[body:end], sub, limit, tails)
            if new is not None:
                pieces += [buf[copied:after_key], _encode_varint(len(new)), new]
                copied = end
            pos = end
        else:  # groups (3, 4) are not in proto3; 6 and 7 are not wire types
            raise _Malformed
        if pos > len(buf):
            raise _Malformed
    if not pieces:
        return None
    pieces.append(buf[copied:])
    return b"".join(pieces)
