"""What every index backend checks before it touches storage, so FAISS and Milvus refuse the same inputs with
the same IndexInputError messages: ids, vectors, long clips' windows, search arguments, adaptive settings."""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

from omniembed.hits import id_problem

from .errors import IndexInputError, brief
from .matryoshka import normalize


@dataclasses.dataclass(frozen=True)
class Adaptive:
    """Matryoshka adaptive retrieval: shortlist `shortlist` items on the first `prefix` dims, re-rank exactly."""

    prefix: int
    shortlist: int


def default_adaptive(dim: int) -> Adaptive:
    # Chosen by bench/index/run.py on embedding-like vectors: an eighth of the dims and a 400-item shortlist
    # matched the exact search's recall@10 (see bench/results/index_recall_qps.md for the sweep).
    return Adaptive(prefix=min(dim, max(32, dim // 8)), shortlist=400)


def resolve_adaptive(value, default: Adaptive, dim: int) -> Adaptive:
    if value is True or value is False or value is None:
        ad = default
    elif isinstance(value, Adaptive):
        ad = value
    elif isinstance(value, dict):
        unknown = set(value) - {"prefix", "shortlist"}
        if unknown:
            raise IndexInputError(f"adaptive has unknown keys {sorted(unknown)} (allowed: prefix, shortlist)")
        ad = Adaptive(**{**dataclasses.asdict(default), **value})
    else:
        raise IndexInputError(f"adaptive must be a bool, dict or Adaptive, got {type(value).__name__}")
    if not (1 <= ad.prefix <= dim) or ad.shortlist < 1:
        raise IndexInputError(f"adaptive prefix must be in [1, {dim}] and shortlist >= 1, got {ad}")
    return ad


def check_ids(ids: Iterable[str], allow_duplicates: bool = False) -> list[str]:
    if isinstance(ids, str):
        raise IndexInputError("ids must be a list of strings, got a single string")
    ids = list(ids)
    for i in ids:
        problem = id_problem(i)
        if problem:
            raise IndexInputError(f"id {brief(i)} {problem}")
    if not allow_duplicates and len(set(ids)) != len(ids):
        seen, dup = set(), None
        for i in ids:
            if i in seen:
                dup = i
                break
            seen.add(i)
        raise IndexInputError(f"id {dup!r} appears twice in one call")
    return ids


def check_vectors(vectors, n: int, dim: int, ids: list[str], where: str = "vectors") -> np.ndarray:
    """(n, dim) finite, non-zero rows -> float32 unit rows."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    if vectors.shape != (n, dim):
        raise IndexInputError(f"{where} have shape {vectors.shape}, expected ({n}, {dim})")
    if not np.isfinite(vectors).all():
        raise IndexInputError(f"{where} contain NaN or infinity")
    norms = np.linalg.norm(vectors, axis=1)
    if (norms == 0).any():
        raise IndexInputError(f"{where}: the vector for {ids[int(np.argmin(norms))]!r} is all zeros and cannot "
                              "be normalised")
    return normalize(vectors)


def check_segments(segments: list, ids: list[str], dim: int) -> list:
    """Per item None or (spans [(start, end) seconds], window vectors (W, dim)) -> the same, checked."""
    if len(segments) != len(ids):
        raise IndexInputError(f"{len(segments)} segment entries for {len(ids)} ids")
    out = []
    for i, seg in zip(ids, segments):
        if seg is None:
            out.append(None)
            continue
        spans, vecs = seg
        spans = [tuple(float(x) for x in sp) for sp in spans]
        if not spans or any(len(sp) != 2 or not (np.isfinite(sp).all() and 0 <= sp[0] <= sp[1]) for sp in spans):
            raise IndexInputError(f"segments of {i!r}: spans must be (start, end) seconds with 0 <= start <= end")
        out.append((spans, check_vectors(vecs, len(spans), dim, [f"{i} window {k}" for k in range(len(spans))],
                                         f"window vectors of {i!r}")))
    return out


def check_query(query, k, sub_dim, dim: int) -> tuple[np.ndarray, int | None]:
    """A search's query and arguments -> ((Q, dim) unit rows, the prefix dim or None for the full vector)."""
    q = np.asarray(query, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dim:
        raise IndexInputError(f"query has shape {np.asarray(query).shape}, expected ({dim},) or (Q, {dim})")
    if not np.isfinite(q).all():
        raise IndexInputError("query contains NaN or infinity")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise IndexInputError(f"k must be a positive int, got {k!r}")
    if sub_dim is not None and not (isinstance(sub_dim, int) and 1 <= sub_dim <= dim):
        raise IndexInputError(f"dim must be an int in [1, {dim}], got {sub_dim!r}")
    return normalize(q), (None if sub_dim == dim else sub_dim)
