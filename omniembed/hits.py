"""What a search returns and what a lookup returns, the same types from the in-process index and the gRPC
client, and what an id may be (torch-, faiss- and onnxruntime-free, so the client installs light)."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Hit:
    """One search result: the stored id, its score (cosine, higher is closer), its metadata
    ({"modality", "uri", "payload"}), and for a long clip indexed with its windows the (start, end) seconds of
    its best-matching window: the moment, not only the file."""

    id: str
    score: float
    metadata: dict
    span: tuple[float, float] | None = None


@dataclasses.dataclass(frozen=True)
class StoredItem:
    """One stored item by id: its unit vector (None when a client asked for metadata only) and metadata."""

    id: str
    vector: np.ndarray | None
    metadata: dict


MAX_ID_BYTES = 512


def id_problem(item_id) -> str | None:
    """What is wrong with an id, or None. The rule: a non-empty str of at most MAX_ID_BYTES bytes in UTF-8,
    without control characters (C0, DEL, C1: NUL and newlines break logs and exports, and the index keeps
    U+001F for its window rows). Otherwise ids are opaque: "a/b" and "../x" are fine, never used as paths."""
    if not isinstance(item_id, str) or not item_id:
        return "must be a non-empty string"
    size = len(item_id.encode("utf-8", "surrogatepass"))
    if size > MAX_ID_BYTES:
        return f"is {size} bytes, over the limit of {MAX_ID_BYTES}"
    bad = next((c for c in item_id if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0), None)
    if bad is not None:
        return f"holds the control character {bad!r} (U+{ord(bad):04X}), which ids may not contain"
    return None
