"""What a search returns and what a lookup returns, the same types from the in-process index and the gRPC
client (torch-, faiss- and onnxruntime-free, so the client installs light)."""

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
