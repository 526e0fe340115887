"""Choosing an index backend by URI, and the API both backends keep.

    open_index("/data/ix", dim=256)                          # FAISS in a folder (the embedded default)
    open_index("milvus-lite:///data/ix.db", dim=256)         # Milvus Lite, in this process
    open_index("http://milvus:19530?collection=docs", dim=256, token=...)   # a Milvus server or cluster

Both answer the same calls with the same results and errors (tests/index/test_backends.py): upsert (with long
clips' windows), delete, get, search at any Matryoshka prefix and adaptive search, the same filter language,
stats, snapshot, close. The Milvus backend needs the `milvus` extra (pymilvus, milvus-lite).
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Protocol

import numpy as np

from omniembed.hits import Hit, StoredItem

from .checks import Adaptive
from .errors import IndexInputError


class VectorIndex(Protocol):
    root: str
    dim: int
    kind: str

    def upsert(self, ids: Iterable[str], vectors: np.ndarray, metadata: Iterable[dict | None] | None = None,
               segments: Iterable[tuple | None] | None = None) -> None: ...

    def delete(self, ids: Iterable[str]) -> int: ...

    def get(self, ids: Iterable[str]) -> list[StoredItem | None]: ...

    def search(self, query: np.ndarray, k: int = 10, *, dim: int | None = None, filter: dict | None = None,
               adaptive: bool | Adaptive | dict | None = None, **knobs: Any) -> list[list[Hit]]: ...

    def stats(self) -> dict: ...

    def snapshot(self) -> None: ...

    def close(self) -> None: ...

    def __len__(self) -> int: ...


MILVUS_MODULES = ("pymilvus", "milvus_lite")


def backend_of(uri: str | os.PathLike) -> str:
    """'faiss' for a folder path, 'milvus' for milvus-lite:// and http(s):// URIs."""
    text = os.fspath(uri)
    if "://" not in text:
        return "faiss"
    from .milvus import SCHEMES

    scheme = text.split("://", 1)[0]
    if scheme in SCHEMES:
        return "milvus"
    raise IndexInputError(f"{text!r}: unknown index URI scheme {scheme!r} (a folder path for FAISS, "
                          "milvus-lite:///path/db, or http://host:19530 for Milvus)")


def open_index(uri: str | os.PathLike, dim: int | None = None, kind: str = "flat", *,
               prefixes: Iterable[int] = (), token: str | None = None, **params: Any) -> VectorIndex:
    """Open the index at `uri` (its own dim and kind), or create it there with `dim`, kind and params.

    prefixes: Matryoshka dims the Milvus backend stores a field for (exact prefix search); FAISS searches any
    prefix exactly and ignores them. token: a Milvus server's token (default $OMNIEMBED_MILVUS_TOKEN)."""
    if backend_of(uri) == "milvus":
        from .milvus import MilvusIndex  # imports pymilvus and milvus_lite only where it uses them

        try:
            return MilvusIndex.open_or_create(os.fspath(uri), dim, kind, prefixes=prefixes, token=token, **params)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in MILVUS_MODULES:
                raise
            raise IndexInputError(f"{uri}: the Milvus backend needs {exc.name}, which this install lacks: "
                                  "pip install 'omniembed[milvus]'") from None
    from .core import Index

    path = os.fspath(uri)
    if os.path.isdir(path) and os.listdir(path):
        return Index.open(path)
    if not dim:
        raise IndexInputError(f"{path}: no index there yet and no dim to create one")
    return Index.create(path, dim=dim, kind=kind, **params)
