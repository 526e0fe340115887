"""The approximate-nearest-neighbour structure of one index kind (flat, HNSW, IVF-PQ) over slot ids.

Slots are the int64 FAISS ids; the Index maps them to users' string ids. Flat and IVF-PQ remove deleted
slots physically; HNSW cannot, so its dead slots stay in the graph and searches exclude them with an
IDSelector (the graph still routes through them, so k live results come back) until a rebuild.

IVF-PQ rotates vectors by a fixed random orthogonal matrix before coarse assignment and PQ. Matryoshka
embeddings put most of their variance in the first dimensions; PQ gives every sub-quantizer the same
256 codes, so without the rotation the leading sub-spaces are quantized far too coarsely and the true
neighbours fall out of the candidate list whatever nprobe is (bench/results/index_recall_qps.md).
A GPU copy serves unfiltered flat/IVF searches when faiss sees a GPU; the CPU index stays the truth.
"""

from __future__ import annotations

import threading

import faiss
import numpy as np

KINDS = ("flat", "hnsw", "ivfpq")
DEFAULTS = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 100, "ef_search": 64},
    # refine: PQ candidates per wanted hit, re-ranked exactly on the stored full vectors
    # rotate: random orthogonal rotation before IVF-PQ, spreading variance evenly over the sub-quantizers
    "ivfpq": {"nlist": 256, "pq_m": 0, "nbits": 8, "nprobe": 16, "refine": 10, "train_size": 0, "rotate": True},
}


def resolve_params(kind: str, dim: int, params: dict) -> dict:
    if kind not in KINDS:
        raise ValueError(f"index kind {kind!r} is not one of {KINDS}")
    unknown = set(params) - set(DEFAULTS[kind])
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)} for kind {kind!r} (known: {sorted(DEFAULTS[kind])})")
    out = {**DEFAULTS[kind], **params}
    if kind == "ivfpq":
        if not out["pq_m"]:
            # 4 dims per sub-quantizer (64 bytes a vector at 256 dims): on 100k embedding-like vectors with
            # the rotation, refine=10 recovered recall@10 0.997 with 4 dims against 0.94 with 8.
            out["pq_m"] = max(1, dim // 4) if dim % 4 == 0 else dim
        if dim % out["pq_m"]:
            raise ValueError(f"pq_m={out['pq_m']} must divide dim={dim}")
        if not out["train_size"]:
            # FAISS's k-means wants ~39 points per centroid (coarse lists and each PQ codebook).
            out["train_size"] = 40 * max(out["nlist"], 2 ** out["nbits"])
    return out


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class AnnIndex:
    def __init__(self, dim: int, kind: str, params: dict, index: faiss.Index | None = None):
        self.dim, self.kind, self.params = dim, kind, params
        self.index = index if index is not None else self._build()
        self._gpu_lock = threading.Lock()
        self._gpu_index = None
        self._gpu_dirty = True
        self._gpu_res = None

    def _build(self) -> faiss.Index:
        d, p = self.dim, self.params
        if self.kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(d))
        if self.kind == "hnsw":
            idx = faiss.IndexHNSWFlat(d, p["M"], faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = p["ef_construction"]
            idx.hnsw.efSearch = p["ef_search"]
            return idx
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFPQ(quantizer, d, p["nlist"], p["pq_m"], p["nbits"], faiss.METRIC_INNER_PRODUCT)
        if not p.get("rotate", False):  # indexes made before the rotation existed lack the key
            return ivf
        # Orthogonal: inner products, hence scores and ids, are unchanged. Seeded: a replay rebuilds the same.
        return faiss.IndexPreTransform(faiss.RandomRotationMatrix(d, d), ivf)

    @property
    def rotated(self) -> bool:
        return isinstance(self.index, faiss.IndexPreTransform)

    def search_params(self, nprobe: int | None = None, ef_search: int | None = None, k: int = 1, selector=None):
        """The faiss SearchParameters of one search. A rotated IVF-PQ reads nprobe and the selector only from
        the inner parameters: set on the outer object, both would be silently ignored."""
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=max(ef_search or self.params["ef_search"], k), sel=selector)
        if self.kind == "flat":
            return faiss.SearchParameters(sel=selector)
        ivf = faiss.SearchParametersIVF(nprobe=nprobe or self.params["nprobe"], sel=selector)
        if not self.rotated:
            return ivf
        outer = faiss.SearchParametersPreTransform(index_params=ivf)
        outer.keep_alive = ivf  # the C++ object only holds a raw pointer to the inner parameters
        return outer

    @property
    def trained(self) -> bool:
        return bool(self.index.is_trained)

    @property
    def removes(self) -> bool:
        """Whether deleted slots leave the structure (else they must be filtered at search)."""
        return self.kind != "hnsw"

    def train(self, vectors: np.ndarray) -> None:
        self.index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        self._gpu_dirty = True

    def add(self, vectors: np.ndarray, slots: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.kind == "hnsw":
            # HNSW numbers its nodes in insertion order; slots are handed out in the same order.
            expected = np.arange(self.index.ntotal, self.index.ntotal + len(slots))
            if not np.array_equal(slots, expected):
                raise RuntimeError("HNSW slots must be added in order")
            self.index.add(vectors)
        else:
            self.index.add_with_ids(vectors, np.ascontiguousarray(slots, dtype=np.int64))
        self._gpu_dirty = True

    def remove(self, slots: np.ndarray) -> None:
        if self.removes and len(slots):
            self.index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(slots, dtype=np.int64)))
            self._gpu_dirty = True

    def reset(self) -> None:
        """Empty the structure, keeping IVF training (compaction re-adds everything)."""
        if self.kind == "hnsw":
            self.index = self._build()
        else:
            self.index.reset()
        self._gpu_dirty = True

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int, selector=None, ef_search: int | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if selector is None and self.kind != "hnsw" and gpu_available():
            result = self._gpu_search(queries, k, nprobe)
            if result is not None:
                return result
        params = self.search_params(nprobe=nprobe, ef_search=ef_search, k=k, selector=selector)
        scores, ids = self.index.search(queries, k, params=params)
        return scores, ids

    def _gpu_search(self, queries: np.ndarray, k: int, nprobe: int | None):
        """Unfiltered search on the GPU copy, or None when there is none (faiss without GPU support, or no GPU)."""
        gpu = self._gpu_copy()
        if gpu is None:
            return None
        with self._gpu_lock:  # nprobe is state of the shared GPU index: one search at a time sets and uses it
            if self.kind == "ivfpq":
                inner = faiss.downcast_index(gpu.index) if isinstance(gpu, faiss.IndexPreTransform) else gpu
                inner.nprobe = nprobe or self.params["nprobe"]
            return gpu.search(queries, k)

    def _gpu_copy(self):
        with self._gpu_lock:
            if self._gpu_dirty or self._gpu_index is None:
                try:
                    if self._gpu_res is None:
                        self._gpu_res = faiss.StandardGpuResources()
                    self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index)
                except RuntimeError:
                    self._gpu_index = None  # e.g. a PQ layout the GPU code does not support: stay on CPU
                self._gpu_dirty = False
            return self._gpu_index

    def serialize(self) -> np.ndarray:
        return faiss.serialize_index(self.index)

    @classmethod
    def deserialize(cls, dim: int, kind: str, params: dict, blob: np.ndarray) -> "AnnIndex":
        index = faiss.deserialize_index(blob)
        if index.d != dim:
            raise ValueError(f"stored {kind} index has dim {index.d}, expected {dim}")
        if kind == "hnsw":
            index.hnsw.efSearch = params["ef_search"]
        return cls(dim, kind, params, index)
