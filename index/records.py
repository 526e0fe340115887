"""Encoding of logged operations (upsert, delete) as WAL payloads. Pure functions, no state."""

from __future__ import annotations

import json
import struct

import numpy as np

OP_UPSERT = 1
OP_DELETE = 2
_OP = struct.Struct("<BII")  # op, json length, vector rows


def encode_upsert(ids: list[str], vectors: np.ndarray, metadata: list[dict]) -> bytes:
    head = json.dumps({"ids": ids, "metadata": metadata}, separators=(",", ":")).encode()
    body = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
    return _OP.pack(OP_UPSERT, len(head), len(ids)) + head + body


def encode_delete(ids: list[str]) -> bytes:
    head = json.dumps({"ids": ids}, separators=(",", ":")).encode()
    return _OP.pack(OP_DELETE, len(head), 0) + head


def decode(payload: bytes, dim: int) -> tuple[int, list[str], np.ndarray | None, list[dict] | None]:
    """(op, ids, vectors (N, dim) or None, metadata or None). Raises ValueError on a malformed payload."""
    op, n_head, rows = _OP.unpack_from(payload, 0)
    head = json.loads(payload[_OP.size : _OP.size + n_head])
    if op == OP_DELETE:
        return op, head["ids"], None, None
    if op != OP_UPSERT:
        raise ValueError(f"unknown op {op}")
    raw = payload[_OP.size + n_head :]
    if len(raw) != rows * dim * 4:
        raise ValueError(f"upsert holds {len(raw)} vector bytes, expected {rows}x{dim} float32")
    vectors = np.frombuffer(raw, dtype="<f4").reshape(rows, dim).astype(np.float32)
    return op, head["ids"], vectors, head["metadata"]
