"""omniembed.index: FAISS vectors under stable ids, a SQLite metadata store, crash-safe persistence.

    from omniembed.index import Index
    ix = Index.create("/data/ix", dim=256, kind="hnsw")
    ix.upsert(["a", "b"], vectors, [{"modality": "image", "uri": "a.png", "payload": {"colour": "red"}}, None])
    hits = ix.search(query, k=10, filter={"modality": "image", "payload": {"colour": "red"}})
    ix.search(query, k=10, adaptive=True)   # Matryoshka shortlist on a prefix, exact re-rank
    ix = open_index("milvus-lite:///data/ix.db", dim=256)   # the same API on Milvus (index/backends.py)
"""

from omniembed.hits import Hit, StoredItem

from .backends import VectorIndex, backend_of, open_index
from .checks import Adaptive
from .core import Index
from .errors import IndexClosedError, IndexCorruptError, IndexInputError, IndexUnavailableError

__all__ = ["Adaptive", "Hit", "Index", "IndexClosedError", "IndexCorruptError", "IndexInputError", "IndexUnavailableError",
           "StoredItem", "VectorIndex", "backend_of", "open_index"]
