"""omniembed.index: FAISS vectors under stable ids, a SQLite metadata store, crash-safe persistence.

    from omniembed.index import Index
    ix = Index.create("/data/ix", dim=256, kind="hnsw")
    ix.upsert(["a", "b"], vectors, [{"modality": "image", "uri": "a.png", "payload": {"colour": "red"}}, None])
    hits = ix.search(query, k=10, filter={"modality": "image", "payload": {"colour": "red"}})
    ix.search(query, k=10, adaptive=True)   # Matryoshka shortlist on a prefix, exact re-rank
"""

from omniembed.hits import Hit, StoredItem

from .core import Adaptive, Index
from .errors import IndexClosedError, IndexCorruptError, IndexInputError

__all__ = ["Adaptive", "Hit", "Index", "IndexClosedError", "IndexCorruptError", "IndexInputError", "StoredItem"]
