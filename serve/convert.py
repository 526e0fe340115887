"""Messages <-> Python values, with the checks that turn bad requests into INVALID_ARGUMENT.

Every check raises RequestError(code, message); the message names the field (e.g. `items[3].vector`) and
what was wrong, so a client can fix its request without reading server logs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from omniembed.hits import id_problem

from .stubs import pb2

MEDIA_KINDS = ("image", "audio", "video")


class RequestError(Exception):
    """A request the server refuses: `code` is the gRPC status, `message` says what to fix."""

    def __init__(self, code: grpc.StatusCode, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code.name}: {message}")


def invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


# ---- items: what the model embeds ---------------------------------------------------------------------
@dataclass(frozen=True)
class RawSegment:
    """One undecoded piece of an item: text, or the encoded bytes of an image/audio/video file."""

    kind: str  # text | image | audio | video
    value: str | bytes


def item_segments(item: "pb2.Item", where: str) -> list[RawSegment]:
    """The segments of an Item (one for a single modality, several for a document), checked non-empty."""
    kind = item.WhichOneof("content")
    if kind is None:
        raise invalid(f"{where} is empty: set one of text, image, audio, video or document")
    if kind != "document":
        return [_segment(kind, getattr(item, kind), where)]
    if not item.document.segments:
        raise invalid(f"{where}.document has no segments")
    out = []
    for j, seg in enumerate(item.document.segments):
        seg_kind = seg.WhichOneof("content")
        if seg_kind is None:
            raise invalid(f"{where}.document.segments[{j}] is empty: set one of text, image, audio or video")
        out.append(_segment(seg_kind, getattr(seg, seg_kind), f"{where}.document.segments[{j}]"))
    return out


def _segment(kind: str, value: str | bytes, where: str) -> RawSegment:
    if kind == "text":
        if not value or value.isspace():  # isspace stops at the first letter: no copy of a huge text
            raise invalid(f"{where}.text is empty or only whitespace")
    elif not value:
        raise invalid(f"{where}.{kind} has no bytes")
    return RawSegment(kind, value)


def item_from_python(value: Any) -> "pb2.Item":
    """A client-side convenience: str -> text, {"image": bytes} -> one modality, [segments] -> document.

    A segment in a list is a str (text) or a one-key dict {"image"|"audio"|"video"|"text": value}; media
    values are bytes or a pathlib.Path to read.
    """
    if isinstance(value, pb2.Item):
        return value
    if isinstance(value, str):
        return pb2.Item(text=value)
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("text", *MEDIA_KINDS, "document"):
            raise ValueError(f"an item dict has one key of text, image, audio, video, document; got {sorted(value)}")
        kind, v = next(iter(value.items()))
        if kind == "document":
            return item_from_python(list(v))
        return pb2.Item(**{kind: _media_bytes(v) if kind != "text" else v})
    if isinstance(value, (list, tuple)):
        segments = []
        for s in value:
            if isinstance(s, str):
                segments.append(pb2.Segment(text=s))
            elif isinstance(s, dict) and len(s) == 1 and next(iter(s)) in ("text", *MEDIA_KINDS):
                kind, v = next(iter(s.items()))
                segments.append(pb2.Segment(**{kind: _media_bytes(v) if kind != "text" else v}))
            else:
                raise ValueError(f"a document segment is a str or a one-key dict of text/image/audio/video, got {s!r}")
        return pb2.Item(document=pb2.Document(segments=segments))
    raise ValueError(f"cannot make an Item from {type(value).__name__}: pass a str, a dict or a list of segments")


def _media_bytes(value: Any) -> bytes:
    """Media as bytes: bytes-like as is, a path (os.PathLike) read from disk."""
    if isinstance(value, os.PathLike):
        with open(value, "rb") as f:
            return f.read()
    return bytes(value)


# ---- vectors ------------------------------------------------------------------------------------------
def vector_from_message(vec: "pb2.Vector", where: str, expected: int) -> np.ndarray:
    values = np.asarray(vec.values, dtype=np.float32)
    if len(values) != expected:
        raise invalid(f"{where} has {len(values)} values, expected {expected}")
    if not np.isfinite(values).all():
        raise invalid(f"{where} contains NaN or infinity")
    if not np.any(values):
        raise invalid(f"{where} is all zeros and has no direction to compare")
    return values


def vector_message(values: np.ndarray) -> "pb2.Vector":
    return pb2.Vector(values=np.asarray(values, dtype=np.float32).tolist())


ENCODINGS = {"float32": 0, "int8": 1, "binary": 2}  # pb2.Encoding values by the name the Python client takes


def encoded_vectors(vectors: np.ndarray, encoding: int) -> list:
    """(N, D) float32 rows -> Vector messages in `encoding` (omniembed.serve.codes has the rules)."""
    from omniembed.serve import codes

    if encoding == pb2.FLOAT32:
        return [vector_message(v) for v in vectors]
    if encoding == pb2.INT8:
        q, scales = codes.to_int8(vectors)
        return [pb2.Vector(int8=row.tobytes(), scale=float(s)) for row, s in zip(q, scales)]
    if encoding == pb2.BINARY:
        return [pb2.Vector(bits=row.tobytes()) for row in codes.to_bits(vectors)]
    raise invalid(f"encoding={encoding} is not one of FLOAT32 (0), INT8 (1), BINARY (2)")


def decoded_vectors(vectors, dim: int, encoding: int):
    """Client side: the Vector messages of an EmbedResponse -> float32 (N, dim); int8 -> ((N, dim) int8 codes,
    (N,) float32 scales); binary -> (N, ceil(dim / 8)) uint8 sign bits."""
    n = len(vectors)
    if encoding == pb2.INT8:
        codes = np.frombuffer(b"".join(v.int8 for v in vectors), np.int8).reshape(n, dim)
        return codes, np.asarray([v.scale for v in vectors], np.float32)
    if encoding == pb2.BINARY:
        return np.frombuffer(b"".join(v.bits for v in vectors), np.uint8).reshape(n, (dim + 7) // 8)
    if not n:
        return np.zeros((0, dim), np.float32)
    return np.asarray([v.values for v in vectors], dtype=np.float32)


# ---- metadata and filters -----------------------------------------------------------------------------
def metadata_from_message(meta: "pb2.Metadata", where: str) -> dict:
    out: dict = {}
    if meta.modality:
        out["modality"] = meta.modality
    if meta.uri:
        out["uri"] = meta.uri
    if meta.payload_json:
        payload = _json(meta.payload_json, f"{where}.payload_json")
        if not isinstance(payload, dict):
            raise invalid(f"{where}.payload_json must be a JSON object, got {type(payload).__name__}")
        out["payload"] = payload
    return out


def metadata_message(meta: dict) -> "pb2.Metadata":
    payload = meta.get("payload") or {}
    return pb2.Metadata(modality=meta.get("modality") or "", uri=meta.get("uri") or "",
                        payload_json=json.dumps(payload, separators=(",", ":")) if payload else "")


def metadata_to_message(meta: dict | None) -> "pb2.Metadata":
    """Client side: {"modality", "uri", "payload"} -> Metadata."""
    meta = meta or {}
    unknown = set(meta) - {"modality", "uri", "payload"}
    if unknown:
        raise ValueError(f"unknown metadata keys {sorted(unknown)} (allowed: modality, uri, payload)")
    return metadata_message(meta)


def hit_message(hit) -> "pb2.Hit":
    """An index Hit -> its message (the span only where the hit has one)."""
    msg = pb2.Hit(id=hit.id, score=hit.score, metadata=metadata_message(hit.metadata))
    if hit.span is not None:
        msg.span.CopyFrom(pb2.TimeSpan(start_s=hit.span[0], end_s=hit.span[1]))
    return msg


def hit_from_reply(msg: "pb2.Hit"):
    """Client side: a Hit message -> omniembed.hits.Hit."""
    from omniembed.hits import Hit

    span = (round(msg.span.start_s, 3), round(msg.span.end_s, 3)) if msg.HasField("span") else None
    return Hit(msg.id, msg.score, metadata_from_reply(msg.metadata), span)


def metadata_from_reply(meta: "pb2.Metadata") -> dict:
    """Client side: Metadata -> the index's {"modality", "uri", "payload"} form."""
    return {"modality": meta.modality or None, "uri": meta.uri or None,
            "payload": json.loads(meta.payload_json) if meta.payload_json else {}}


def filter_from_message(flt: "pb2.Filter") -> dict | None:
    out: dict = {}
    if flt.modality:
        out["modality"] = list(flt.modality)
    if flt.uri:
        out["uri"] = list(flt.uri)
    if flt.payload_json:
        payload = _json(flt.payload_json, "filter.payload_json")
        if not isinstance(payload, dict):
            raise invalid(f"filter.payload_json must be a JSON object of field -> value, got {type(payload).__name__}")
        out["payload"] = payload
    return out or None


def filter_to_message(flt: dict | None) -> "pb2.Filter | None":
    if not flt:
        return None
    unknown = set(flt) - {"modality", "uri", "payload"}
    if unknown:
        raise ValueError(f"filter has unknown keys {sorted(unknown)} (allowed: modality, uri, payload)")
    as_list = lambda v: [v] if isinstance(v, str) else list(v)  # noqa: E731
    return pb2.Filter(modality=as_list(flt.get("modality", [])), uri=as_list(flt.get("uri", [])),
                      payload_json=json.dumps(flt["payload"]) if flt.get("payload") else "")


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise invalid(f"{where} is not valid JSON: {exc}") from None
    except RecursionError:
        from omniembed.index.metadata import MAX_DEPTH  # server side only: the client installs without the index

        raise invalid(f"{where} is nested too deeply (the limit is {MAX_DEPTH} levels)") from None


def check_ids(ids, where: str) -> list[str]:
    ids = list(ids)
    if not ids:
        raise invalid(f"{where} is empty: name at least one id")
    for j, i in enumerate(ids):
        if not i:
            raise invalid(f"{where}[{j}] is an empty string")
        check_id(i, f"{where}[{j}]")
    return ids


def check_id(item_id: str, where: str) -> str:
    """The index's id rule (omniembed.hits.id_problem), reported against the request field."""
    problem = id_problem(item_id)
    if problem:
        raise invalid(f"{where} {problem}")
    return item_id
