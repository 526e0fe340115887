"""Embedding-like synthetic vectors for tests and benchmarks, and the ANN recall they are scored with.

Isotropic Gaussians make every dimension equally informative, which real Matryoshka embeddings are not.
These vectors are clustered (items sit around topic centres) and have a per-dimension standard deviation
decaying as (1 + j) ** -decay, so a prefix carries most of the signal, as Matryoshka training produces;
rows are L2-normalised.
"""

from __future__ import annotations

import numpy as np


def dimension_scale(dim: int, decay: float = 0.5) -> np.ndarray:
    return ((1.0 + np.arange(dim)) ** -decay).astype(np.float32)


def embedding_like(
    n: int,
    dim: int,
    *,
    clusters: int = 1000,
    spread: float = 0.6,
    decay: float = 0.5,
    seed: int = 0,
    centres_seed: int = 1234,
) -> np.ndarray:
    """(n, dim) float32 unit rows. Vectors drawn with the same centres_seed share one set of topic centres,
    so queries (a different `seed`) fall near the same clusters as the base set."""
    scale = dimension_scale(dim, decay)
    centres = np.random.default_rng(centres_seed).standard_normal((clusters, dim), dtype=np.float32) * scale
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 65536):  # chunked so 1M x 256 never holds two full-size temporaries
        stop = min(n, start + 65536)
        labels = rng.integers(0, clusters, stop - start)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) * (scale * spread)
        block = centres[labels] + noise  # (b, dim)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def neighbour_recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """ANN recall@k: mean over queries of |found[:k] ∩ truth[:k]| / k, the share of the exact top-k neighbours an
    approximate search found (ids, -1 ignored). Not the retrieval recall of omniembed.train.evaluate."""
    hits = 0
    for f, t in zip(found, truth):
        hits += len(set(f[:k].tolist()) & set(t[:k].tolist()) - {-1})
    return hits / (k * len(truth))
