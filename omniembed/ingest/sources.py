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

import glob
import hashlib
import json
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from omniembed.data.manifest import Document, Item, Record, parse_record
from omniembed.errors import ManifestError, MediaError

LINES_PER_UNIT = 256
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
COLUMNS = ("source", "id", "content", "metadata", "digest", "reason")


@dataclass(frozen=True)
class Unit:
    """One read task: `count` lines of a manifest from byte `offset` (first numbered `line`), or one shard."""

    path: str
    kind: str  # "lines" | "shard"
    offset: int = 0
    line: int = 0
    count: int = 0

    def as_row(self) -> dict:
        return asdict(self)


def plan_units(source: str | os.PathLike | list, lines_per_unit: int = LINES_PER_UNIT,
               min_units: int = 1) -> list[Unit]:
    """Read units for a manifest (.jsonl), a shard, a brace pattern or list of shards, or a folder of shards.
    A manifest is cut into at least `min_units` units where it has the lines (so every actor gets work)."""
    paths = _expand(source)
    manifests = [p for p in paths if not p.endswith(SHARD_SUFFIXES)]
    if manifests and len(paths) > 1:
        raise ManifestError(f"{manifests[0]}: give one JSONL manifest, or shards only (got {len(paths)} inputs)")
    if manifests:
        units = list(_line_units(manifests[0], lines_per_unit))
        if 0 < len(units) < min_units:  # a small manifest: scan it again, cut finer so every actor gets work
            per_unit = -(-sum(u.count for u in units) // min_units)
            units = list(_line_units(manifests[0], per_unit))
        return units
    return [Unit(path=p, kind="shard") for p in paths]


def _expand(source: str | os.PathLike | list) -> list[str]:
    entries = [os.fspath(s) for s in source] if isinstance(source, (list, tuple)) else [os.fspath(source)]
    out: list[str] = []
    for entry in entries:
        if os.path.isdir(entry):
            found = sorted(p for p in glob.glob(os.path.join(entry, "*")) if p.endswith(SHARD_SUFFIXES))
            if not found:
                raise ManifestError(f"{entry}: a folder with no shards (*.tar) in it")
            out += found
            continue
        for path in _braces(entry):
            if not os.path.isfile(path):
                raise ManifestError(f"{path}: no such manifest or shard")
            out.append(path)
    return [os.path.abspath(p) for p in out]


def _braces(entry: str) -> list[str]:
    """'shard-{000000..000099}.tar' -> its paths (as webdataset reads them), where braceexpand is installed."""
    try:
        import braceexpand
    except ImportError:  # a serve-only install: no patterns, plain paths still work
        return [entry]
    return list(braceexpand.braceexpand(entry))


def _line_units(path: str, lines_per_unit: int) -> Iterator[Unit]:
    """Units of `lines_per_unit` lines, from one binary scan for newlines (no JSON parsed here)."""
    offset, line, start, start_line, count = 0, 1, 0, 1, 0
    try:
        handle = open(path, "rb")
    except OSError as err:
        raise ManifestError(f"{path}: cannot open manifest: {err.strerror or err}") from err
    with handle:
        for raw in handle:
            if count == 0:
                start, start_line = offset, line
            offset, line, count = offset + len(raw), line + 1, count + 1
            if count == lines_per_unit:
                yield Unit(path, "lines", start, start_line, count)
                count = 0
    if count:
        yield Unit(path, "lines", start, start_line, count)


def read_unit(unit: dict, fingerprint: str) -> Iterator[dict]:
    """Rows of one unit (a Ray `flat_map` function). `fingerprint` names the model and settings, so a
    different bundle gives different digests and re-embeds everything."""
    if unit["kind"] == "lines":
        yield from _read_lines(unit, fingerprint)
    else:
        yield from _read_shard(unit["path"], fingerprint)


def _read_lines(unit: dict, fingerprint: str) -> Iterator[dict]:
    path = unit["path"]
    base = os.path.dirname(path)
    with open(path, "rb") as handle:
        handle.seek(unit["offset"])
        for lineno in range(unit["line"], unit["line"] + unit["count"]):
            raw = handle.readline()
            where = f"{path}:{lineno}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield reject(where, "", f"{where}: not UTF-8 text: {err.reason} at byte {err.start}")
                continue
            if not text.strip():
                continue  # blank lines carry nothing, as in iter_manifest
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                yield reject(where, "", f"{where}: invalid JSON: {err.msg} at column {err.colno}")
                continue
            try:
                record = parse_record(obj, base_dir=base, where=(path, lineno))
            except ManifestError as err:
                yield reject(where, _id_of(obj), str(err))
                continue
            yield from entries_of(record, where, fingerprint)


def _read_shard(path: str, fingerprint: str) -> Iterator[dict]:
    from omniembed.data.shards import iter_tar_samples, record_from_sample

    key = None
    try:
        for key, sample in iter_tar_samples(path):
            where = f"{path}#{key}"
            try:
                record = record_from_sample(sample, where)
            except ManifestError as err:
                yield reject(where, "", str(err))
                continue
            yield from entries_of(record, where, fingerprint)
    except ManifestError as err:  # the tar itself is broken: what follows the last good sample is lost
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


def _id_of(obj: Any) -> str:
    id_ = obj.get("id") if isinstance(obj, dict) else None
    return id_ if isinstance(id_, str) else ""
