"""The recall matrix: every ordered pair of the modalities present, at every Matryoshka dim.

A pair's gallery is every view of the target modality; its queries are the views of the query modality that
have at least one hit in that gallery (a query whose item has no view there, or no label, cannot be scored).
A pair with no such query is listed under "skipped", never scored as zero. Each dim is the L2-renormalised
prefix of the full vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omniembed.eval.hits import hit_key
from omniembed.eval.metrics import KS, chance_recall, mean_average_precision, ranked_hits

MODALITIES = ("text", "image", "audio", "video", "interleaved")


@dataclass
class Views:
    """The inputs of one modality (what an embedder takes), the hit key of each, and the record each came from."""

    inputs: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def add(self, x, key, record_id: str) -> None:
        self.inputs.append(x)
        self.keys.append(key)
        self.ids.append(record_id)


def collect_views(records: list, rule: str, label: str | None = None, max_items: int | None = None,
                  modalities: Sequence[str] = MODALITIES) -> dict[str, Views]:
    """Per modality present, the views of a manifest's items: the first caption, each media file (a path, or
    bytes from a shard), and a document about exactly one item as its interleaved view."""
    from omniembed.data.manifest import Document, Item

    items = [r for r in records if isinstance(r, Item)][:max_items]
    views = {m: Views() for m in modalities}
    by_id = {}
    for it in items:
        key = hit_key(rule, it.id, it.attributes, it.meta.get("group"), label)
        if key is None:
            continue
        by_id[it.id] = key
        if it.texts and "text" in views:
            views["text"].add(it.texts[0], key, it.id)
        for m in ("image", "audio", "video"):
            if m in it.media and m in views:
                views[m].add(media_input(it.media[m]), key, it.id)
    if "interleaved" in views:
        for doc in (r for r in records if isinstance(r, Document)):
            members = (doc.meta or {}).get("items", [])
            if len(members) == 1 and members[0] in by_id:  # a document about several things has no one identity
                views["interleaved"].add([s.text if s.media is None else media_input(s.media) for s in doc.segments],
                                         by_id[members[0]], doc.id)
    return {m: v for m, v in views.items() if v.inputs}


def media_input(media):
    """A local file as its path (decoders name it in errors), anything else as its bytes."""
    return Path(media.source) if media.data is None and not media.is_url else media.read_bytes()


def answerable_rows(query_keys: Sequence, gallery_keys: Sequence) -> list[int]:
    """The queries with at least one hit in the gallery."""
    present = set(gallery_keys)
    return [i for i, k in enumerate(query_keys) if k in present]


def matrix_from_embeddings(full: dict[str, np.ndarray], keys: dict[str, Sequence], dims: Sequence[int],
                           ks: Sequence[int] = KS) -> dict:
    """{"dims": {d: {"q->t": {k: recall}}}, "map": {d: {"q->t": mAP}}, "chance": {"q->t": {k: p}},
    "queries": {"q->t": n}, "counts": {m: n}, "skipped": ["q->t: why", ...]} from full-width vectors
    (any norm) and the hit keys of their rows."""
    out: dict = {"counts": {m: len(keys[m]) for m in full}, "dims": {}, "map": {}, "chance": {}, "queries": {},
                 "skipped": []}
    pairs = []
    for q in full:
        for t in full:
            if q == t:
                continue
            rows = answerable_rows(keys[q], keys[t])
            if rows:
                pairs.append((q, t, rows))
            else:
                out["skipped"].append(f"{q}->{t}: no {q} query has a hit among the {len(keys[t])} {t} views")
    for d in dims:
        prefix = {m: e[:, :d] / np.maximum(np.linalg.norm(e[:, :d], axis=1, keepdims=True), 1e-12)
                  for m, e in full.items()}
        table, maps = {}, {}
        for q, t, rows in pairs:
            hits = ranked_hits(prefix[q][rows], prefix[t], [keys[q][i] for i in rows], keys[t])
            table[f"{q}->{t}"] = {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}
            maps[f"{q}->{t}"] = mean_average_precision(hits)
        out["dims"][int(d)] = table
        out["map"][int(d)] = maps
    for q, t, rows in pairs:
        out["chance"][f"{q}->{t}"] = {k: chance_recall([keys[q][i] for i in rows], keys[t], k) for k in ks}
        out["queries"][f"{q}->{t}"] = len(rows)
    return out
