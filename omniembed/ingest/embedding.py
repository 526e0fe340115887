"""The actor of `omniembed ingest`: one ONNX `Embedder` per Ray actor, embedding batches of entry rows.

Each actor loads the bundle once (torch-free ONNX Runtime, idle threads sleeping) and turns a batch of rows
from omniembed.ingest.sources into result rows: `ok` with the entry's vector (and its windows' vectors and
spans for long media when segments are stored), `skip` when the ledger already holds the entry with the
same digest, `reject` with the reason when it cannot be embedded. Embedding follows the server's Upsert
exactly (serve/servicer.py): the same decoding, the same Matryoshka prefix of the index's dim, the same
pooling of windows; so an ingested index answers searches like one built through Upsert.

Inputs are decoded one by one so that a corrupt file rejects only its own entry; the model runs on the
whole batch of the rest.
"""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

import numpy as np

from omniembed.errors import ConfigError, OmniEmbedError

from .ledger import contains, entry_key

# what a client's bad item raises while being decoded or tokenized (the server answers these INVALID_ARGUMENT)
ITEM_ERRORS = (OmniEmbedError, ConfigError, ValueError, TypeError)


class EmbedActor:
    """`ds.map_batches(EmbedActor, fn_constructor_kwargs=..., compute=ActorPoolStrategy(size=N))`."""

    def __init__(self, bundle: str, dim: int, segments: bool, threads: int | None, known: list,
                 max_audio_seconds: float | None = None, max_video_seconds: float | None = None):
        from omniembed.runtime import Embedder

        self.embedder = Embedder.load(bundle, threads=threads, inter_threads=1, spin=False, decode_workers=0,
                                      max_audio_seconds=max_audio_seconds, max_video_seconds=max_video_seconds)
        self.dim, self.segments = dim, segments
        self.known = _resolve(known)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        n = len(batch["id"])
        status, reason = ["ok"] * n, [str(r) for r in batch["reason"]]
        vectors = np.zeros((n, self.dim), np.float32)
        windows, spans, cut = [b""] * n, [""] * n, [False] * n
        todo, decoded = [], []
        for j in range(n):
            if reason[j]:
                status[j] = "reject"
            elif contains(self.known, entry_key(str(batch["id"][j]), str(batch["digest"][j]))):
                status[j] = "skip"
            else:
                try:
                    decoded.append(self.embedder.decode([pickle.loads(batch["content"][j])])[0])
                    todo.append(j)
                except ITEM_ERRORS as exc:
                    status[j], reason[j] = "reject", f"{batch['source'][j]}: {batch['id'][j]}: {exc}"
        if todo:
            for j, got in zip(todo, self._embed(decoded)):
                if isinstance(got, str):
                    status[j], reason[j] = "reject", f"{batch['source'][j]}: {batch['id'][j]}: {got}"
                    continue
                vectors[j], win, span = got
                if span:
                    windows[j], spans[j] = win.astype(np.float32).tobytes(), json.dumps(span)
            for j, d in zip(todo, decoded):
                cut[j] = bool(d.cut)
        return {"source": batch["source"], "id": batch["id"], "status": np.array(status), "reason": np.array(reason),
                "digest": batch["digest"], "metadata": batch["metadata"], "vector": vectors,
                "windows": np.array(windows, dtype=object), "spans": np.array(spans), "cut": np.array(cut),
                "worker": np.full(n, os.getpid(), np.int64)}

    def _embed(self, decoded: list) -> list:
        """Per decoded input (vector, windows or None, spans or None), or the error text when it fails."""
        try:
            return self._embed_all(decoded)
        except ITEM_ERRORS:
            pass  # find which input it was: one by one
        out = []
        for d in decoded:
            try:
                out += self._embed_all([d])
            except ITEM_ERRORS as exc:
                out.append(f"cannot embed: {exc}")
        return out

    def _embed_all(self, decoded: list) -> list:
        from omniembed.index.matryoshka import truncate
        from omniembed.tokenization.windows import pool

        if not self.segments:
            vectors = self.embedder.embed_decoded(decoded, dim=self.dim)
            return [(v, None, None) for v in vectors]
        out = []
        for full, spans in self.embedder.embed_windows_decoded(decoded):
            vector = truncate(pool(full) if spans else full[0], self.dim)
            out.append((vector, truncate(full, self.dim) if spans else None, [list(s) for s in spans] if spans else None))
        return out


def _resolve(known: list) -> np.ndarray:
    """The ledger's keys: passed as [ObjectRef] (Ray resolves only top-level refs) or as an array."""
    value = known[0] if known else np.zeros(0, np.uint64)
    if not isinstance(value, np.ndarray):
        import ray

        value = ray.get(value)
    return value
