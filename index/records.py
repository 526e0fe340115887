"""Encoding of logged operations (upsert, delete) as WAL payloads. Pure functions, no state."""

from __future__ import annotations

import json
import struct

import numpy as np

OP_UPSERT = 1
OP_DELETE = 2
_OP = struct.Struct("<BII")  # op, json length, vector rows


def encode_upsert(ids: list[str], vectors: np.ndarray, metadata: list[dict],
                  segments: list | None = None) -> bytes:
    """segments: per id None, or (spans [(start, end)], window vectors (W, D)), stored after the item vectors."""
    record = {"ids": ids, "metadata": metadata}
    rows = [np.ascontiguousarray(vectors, dtype="<f4")]
    if segments is not None and any(s is not None for s in segments):
        record["segments"] = [None if s is None else [list(map(float, span)) for span in s[0]] for s in segments]
        rows += [np.ascontiguousarray(s[1], dtype="<f4") for s in segments if s is not None]
    head = json.dumps(record, separators=(",", ":")).encode()
    body = b"".join(r.tobytes() for r in rows)
    return _OP.pack(OP_UPSERT, len(head), sum(len(r) for r in rows)) + head + body


def encode_delete(ids: list[str]) -> bytes:
    head = json.dumps({"ids": ids}, separators=(",", ":")).encode()
    return _OP.pack(OP_DELETE, len(head), 0) + head


def decode(payload: bytes, dim: int) -> tuple[int, list[str], np.ndarray | None, list[dict] | None, list | None]:
    """(op, ids, vectors (N, dim) or None, metadata or None, segments as encode_upsert takes them or None).
    Raises ValueError on a malformed payload."""
    op, n_head, rows = _OP.unpack_from(payload, 0)
    head = json.loads(payload[_OP.size : _OP.size + n_head])
    if op == OP_DELETE:
        return op, head["ids"], None, None, None
    if op != OP_UPSERT:
        raise ValueError(f"unknown op {op}")
    raw = payload[_OP.size + n_head :]
    if len(raw) != rows * dim * 4:
        raise ValueError(f"upsert holds {len(raw)} vector bytes, expected {rows}x{dim} float32")
    allv = np.frombuffer(raw, dtype="<f4").reshape(rows, dim).astype(np.float32)
    n = len(head["ids"])
    segments, at = None, n
    if head.get("segments") is not None:
        segments = []
        for spans in head["segments"]:
            if spans is None:
                segments.append(None)
                continue
            segments.append(([tuple(sp) for sp in spans], allv[at:at + len(spans)]))
            at += len(spans)
    if at != rows:
        raise ValueError(f"upsert holds {rows} vectors, its records name {at}")
    return op, head["ids"], allv[:n], head["metadata"], segments
