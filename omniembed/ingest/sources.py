"""What `omniembed ingest` reads: a JSONL manifest or WebDataset shards, cut into read units, each unit read
into index entries.

A unit is what one Ray read task handles: a run of manifest lines (found by one cheap scan of the file for
line starts, so line numbers survive into the rejects file) or one shard. Reading a unit parses its records
with the manifest's own validation (omniembed.data.manifest / omniembed.data.shards) and expands each record
into entries the way the demo's Upsert path does (omniembed.demo.queries): one per view of an item,
`<item id>/<modality>`, and one per interleaved document under its own id. A record or view that cannot be
read becomes a reject row carrying the reason; nothing is dropped silently.

Every row has the same columns (Ray Data blocks want one schema): `source` (file:line or shard#key),
`id`, `content` (the pickled Embedder input: a str, {modality: bytes}, or a list of them for a document),
`metadata` (JSON), `digest` (what the ledger compares to skip unchanged entries) and `reason` (non-empty for
a reject).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from typing import Any, Iterator

from omniembed.data.manifest import Document, Item, Record
from omniembed.data.sources import SHARD_SUFFIXES, Unit, UnreadableShard, parse_raw, plan_units, raw_id, read_raw
from omniembed.errors import ManifestError, MediaError

__all__ = ["COLUMNS", "SHARD_SUFFIXES", "Unit", "plan_units", "read_unit", "entries_of", "entry", "reject"]

COLUMNS = ("source", "id", "content", "metadata", "digest", "reason")


def read_unit(unit: dict, fingerprint: str) -> Iterator[dict]:
    """Rows of one unit (a Ray `flat_map` function). `fingerprint` names the model and settings, so a
    different bundle gives different digests and re-embeds everything."""
    if unit["kind"] == "lines":
        yield from _read_lines(unit, fingerprint)
    else:
        yield from _read_shard(unit["path"], fingerprint)


def _read_lines(unit: dict, fingerprint: str) -> Iterator[dict]:
    for raw in read_raw(unit):
        try:
            record = parse_raw(raw)
        except ManifestError as err:
            yield reject(raw.where, raw_id(raw), str(err))
            continue
        yield from entries_of(record, raw.where, fingerprint)


def _read_shard(path: str, fingerprint: str) -> Iterator[dict]:
    key = None
    try:
        for raw in read_raw(Unit(path, "shard")):
            key = raw.where.rsplit("#", 1)[-1]
            try:
                record = parse_raw(raw)
            except ManifestError as err:
                yield reject(raw.where, "", str(err))
                continue
            yield from entries_of(record, raw.where, fingerprint)
    except UnreadableShard as err:  # the tar itself is broken: what follows the last good sample is lost
        after = f" after sample {key}" if key is not None else ""
        yield reject(path, "", f"{err}; the rest of this shard{after} was not read")


def entries_of(record: Record, where: str, fingerprint: str) -> Iterator[dict]:
    """One row per index entry of a record: each view of an item, or the whole of a document."""
    from omniembed.demo.queries import MODALITIES, entry_id, entry_metadata, has_view, view_of

    if isinstance(record, Document):
        yield _document_entry(record, where, fingerprint)
        return
    assert isinstance(record, Item)
    for modality in MODALITIES:
        if not has_view(record, modality):
            continue
        id_ = entry_id(record, modality)
        try:
            view = view_of(record, modality)
        except MediaError as err:
            yield reject(where, id_, f"{where}: views.{modality}: {err}")
            continue
        yield entry(where, id_, view, entry_metadata(record, modality), fingerprint)


def _document_entry(doc: Document, where: str, fingerprint: str) -> dict:
    from omniembed.demo.queries import entry_payload

    parts: list[Any] = []
    for i, seg in enumerate(doc.segments):
        if seg.media is None:
            parts.append(seg.text)
            continue
        try:
            parts.append({seg.modality: seg.media.read_bytes()})
        except MediaError as err:
            return reject(where, doc.id, f"{where}: segments[{i}].{seg.modality}: {err}")
    return entry(where, doc.id, parts, {"modality": "document", "payload": entry_payload(doc)}, fingerprint)


def entry(source: str, id_: str, content: Any, metadata: dict, fingerprint: str) -> dict:
    blob = pickle.dumps(content, protocol=5)
    meta = json.dumps(metadata, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.blake2b(blob, digest_size=16, key=_key(fingerprint, meta)).hexdigest()
    return {"source": source, "id": id_, "content": blob, "metadata": meta, "digest": digest, "reason": ""}


def _key(fingerprint: str, meta: str) -> bytes:
    return hashlib.blake2b(f"{fingerprint}\n{meta}".encode("utf-8"), digest_size=32).digest()


def reject(source: str, id_: str, reason: str) -> dict:
    return {"source": source, "id": id_, "content": b"", "metadata": "", "digest": "", "reason": reason}
