"""The metadata store: one SQLite row per live item (id, slot, modality, uri, JSON payload) and filters.

A long clip indexed with its windows has one row more per window: its id is the item's id, SEGMENT_SEP and
the window's number, `parent` names the item, span_start/span_end its time, and it carries the item's
metadata (so filters select windows as they select items). Counts and lookups by id see items only.

The database lives in memory; durability comes from the index's WAL and snapshots (the SQLite file is
part of each snapshot), so vectors and metadata are acknowledged together by one fsync'd log record.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
from typing import Any, Iterable

import numpy as np

from .errors import IndexInputError, brief

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    slot INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    modality TEXT,
    uri TEXT,
    payload TEXT NOT NULL DEFAULT '{}',
    parent TEXT,
    span_start REAL,
    span_end REAL
);
CREATE INDEX IF NOT EXISTS items_modality ON items(modality);
"""
_SEGMENT_COLUMNS = (("parent", "TEXT"), ("span_start", "REAL"), ("span_end", "REAL"))
SEGMENT_SEP = "\x1f"  # ids cannot hold control characters, so a window's id never collides with an item's
_FIELD = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_SCALARS = (str, int, float, bool, type(None))
# What the filter language can compare, so what a payload may store: 64-bit integers, finite floats, strings,
# booleans and null, in objects and lists nested at most MAX_DEPTH deep, MAX_PAYLOAD_BYTES as JSON.
MAX_DEPTH = 32
MAX_PAYLOAD_BYTES = 64 * 1024
INT64 = (-(1 << 63), (1 << 63) - 1)
MAX_FILTER_VALUES = 128  # values over all of a filter's terms (each is a few SQL parameters)


def check_payload_value(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what a payload may not hold (see MAX_DEPTH above), naming the place."""
    if depth > MAX_DEPTH:
        raise IndexInputError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise IndexInputError(f"{where}: integer {value} is outside the 64-bit range filters compare")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            check_payload_value(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_payload_value(v, f"{where}[{i}]", depth + 1)


def clean_metadata(meta: dict | None, where: str) -> dict:
    """The stored form {"modality", "uri", "payload"}; raises IndexInputError naming `where`."""
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise IndexInputError(f"{where}: metadata must be a dict, got {type(meta).__name__}")
    unknown = set(meta) - {"modality", "uri", "payload"}
    if unknown:
        raise IndexInputError(f"{where}: unknown metadata keys {sorted(unknown)} (allowed: modality, uri, payload)")
    out = {"modality": meta.get("modality"), "uri": meta.get("uri"), "payload": meta.get("payload") or {}}
    for key in ("modality", "uri"):
        if out[key] is not None and not isinstance(out[key], str):
            raise IndexInputError(f"{where}: metadata {key!r} must be a string")
    if not isinstance(out["payload"], dict):
        raise IndexInputError(f"{where}: metadata payload must be a JSON object (dict)")
    check_payload_value(out["payload"], f"{where}: payload")
    try:
        size = len(json.dumps(out["payload"], allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise IndexInputError(f"{where}: payload is not JSON-serialisable: {exc}") from None
    if size > MAX_PAYLOAD_BYTES:
        raise IndexInputError(f"{where}: payload is {size} bytes as JSON, over the limit of {MAX_PAYLOAD_BYTES}")
    return out


def parse_filter(flt: dict) -> list[tuple[str, str | None, list]]:
    """A filter dict -> its checked terms [(column, payload field or None, values)]; every backend reads these.

    {"modality": "image" | [..], "uri": str | [..], "payload": {"field.sub": value | [values]}}; all terms
    must hold (AND); a list means any of its values (OR). Payload values are JSON scalars.
    """
    if not isinstance(flt, dict):
        raise IndexInputError(f"filter must be a dict, got {type(flt).__name__}")
    unknown = set(flt) - {"modality", "uri", "payload"}
    if unknown:
        raise IndexInputError(f"filter has unknown keys {sorted(unknown)} (allowed: modality, uri, payload)")
    terms: list[tuple[str, str | None, list]] = []
    for col in ("modality", "uri"):
        if col in flt:
            values = _as_list(flt[col], f"filter {col}")
            if not all(isinstance(v, str) for v in values):
                raise IndexInputError(f"filter {col} values must be strings")
            terms.append((col, None, values))
    payload = flt.get("payload", {})
    if not isinstance(payload, dict):
        raise IndexInputError("filter payload must be a dict of field -> value")
    for field, value in payload.items():
        if not isinstance(field, str) or not _FIELD.match(field):
            raise IndexInputError(f"filter payload field {field!r} is not a dotted name of [A-Za-z0-9_-]")
        values = _as_list(value, f"filter payload {field}")
        for v in values:
            if not isinstance(v, _SCALARS):
                raise IndexInputError(f"filter payload {field}: value {brief(v)} is not a JSON scalar")
            if isinstance(v, int) and not isinstance(v, bool) and not INT64[0] <= v <= INT64[1]:
                raise IndexInputError(f"filter payload {field}: integer {v} is outside the 64-bit range filters compare")
        terms.append(("payload", field, values))
    if sum(len(t[2]) for t in terms) > MAX_FILTER_VALUES:
        raise IndexInputError(f"filter has too many terms and values (at most {MAX_FILTER_VALUES} values in all)")
    return terms


def compile_filter(flt: dict) -> tuple[str, list[Any]]:
    """A filter dict (see parse_filter) -> (SQL WHERE clause, parameters)."""
    clauses: list[str] = []
    params: list[Any] = []
    for col, field, values in parse_filter(flt):
        if field is None:
            clauses.append(f"{col} IN ({','.join('?' * len(values))})")
            params.extend(values)
            continue
        path = "$." + ".".join(f'"{part}"' for part in field.split("."))
        ors = []
        for v in values:
            # json_extract maps true/false to 1/0 and null to NULL, so those compare by JSON type instead.
            if v is None:
                ors.append("json_type(payload, ?) = 'null'")
                params.append(path)
            elif isinstance(v, bool):
                ors.append("json_type(payload, ?) = ?")
                params.extend([path, "true" if v else "false"])
            else:
                ors.append("(json_extract(payload, ?) = ? AND json_type(payload, ?) IN (?, ?, ?))")
                kinds = ("text",) * 3 if isinstance(v, str) else ("integer", "real", "real")
                params.extend([path, v, path, *kinds])
        clauses.append("(" + " OR ".join(ors) + ")")
    return (" AND ".join(clauses) or "1"), params


def _as_list(value: Any, where: str) -> list:
    if isinstance(value, (list, tuple, set, frozenset)):
        values = list(value)
        if not values:
            raise IndexInputError(f"{where}: empty list matches nothing; leave the key out instead")
        if len(values) > MAX_FILTER_VALUES:
            raise IndexInputError(f"{where}: {len(values)} values, over the limit of {MAX_FILTER_VALUES}")
        return values
    return [value]


class MetadataStore:
    def __init__(self, conn: sqlite3.Connection | None = None):
        self._conn = conn or sqlite3.connect(":memory:", check_same_thread=False)
        # Explicit transactions only: a dangling implicit one would block the snapshot's backup() forever.
        self._conn.isolation_level = None
        self._conn.executescript(_SCHEMA)
        have = {row[1] for row in self._conn.execute("PRAGMA table_info(items)")}
        for name, kind in _SEGMENT_COLUMNS:  # a snapshot written before windows were indexed
            if name not in have:
                self._conn.execute(f"ALTER TABLE items ADD COLUMN {name} {kind}")
        self._conn.execute("CREATE INDEX IF NOT EXISTS items_parent ON items(parent)")
        # One connection is shared by searching threads; SQLite's own mutex is per call, ours per query.
        self._mutex = threading.Lock()
        # COUNT(*) walks the whole table (milliseconds at 100k rows) and every search asks: kept until a write
        self._counts: tuple[int, int] | None = None

    # -- writes (the index holds its write lock) --
    def upsert(self, rows: list[tuple[int, str, dict]],
               segments: list[tuple[int, str, dict, str, float, float]] = ()) -> np.ndarray:
        """Insert (slot, id, clean metadata) rows, and window rows (slot, id, metadata, parent, start, end);
        returns the slots the ids (and their earlier windows) held before, now dead."""
        with self._mutex, self._transaction():
            self._counts = None
            ids = [r[1] for r in rows]
            old = np.concatenate([self._slots_locked(ids), self._segment_slots_locked(ids)])
            self._conn.executemany("DELETE FROM items WHERE id = ? OR parent = ?", [(i, i) for i in ids])
            self._conn.executemany(
                "INSERT INTO items(slot, id, modality, uri, payload) VALUES (?, ?, ?, ?, ?)",
                [(s, i, m["modality"], m["uri"], json.dumps(m["payload"], separators=(",", ":"))) for s, i, m in rows],
            )
            self._conn.executemany(
                "INSERT INTO items(slot, id, modality, uri, payload, parent, span_start, span_end) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(s, i, m["modality"], m["uri"], json.dumps(m["payload"], separators=(",", ":")), parent, a, b)
                 for s, i, m, parent, a, b in segments])
        return old

    @contextlib.contextmanager
    def _transaction(self):
        self._conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def delete(self, ids: list[str]) -> np.ndarray:
        """Delete items and their windows; returns their slots."""
        with self._mutex, self._transaction():
            self._counts = None
            old = np.concatenate([self._slots_locked(ids), self._segment_slots_locked(ids)])
            self._conn.executemany("DELETE FROM items WHERE id = ? OR parent = ?", [(i, i) for i in ids])
        return old

    def remap(self, old_slots: np.ndarray, new_slots: np.ndarray) -> None:
        """Renumber slots (compaction). New slots must be a permutation-free dense renumbering."""
        with self._mutex, self._transaction():
            # Shift to negatives first so no intermediate state violates the primary key.
            self._conn.executemany(
                "UPDATE items SET slot = ? WHERE slot = ?",
                [(-1 - int(n), int(o)) for o, n in zip(old_slots, new_slots)],
            )
            self._conn.execute("UPDATE items SET slot = -1 - slot WHERE slot < 0")

    # -- reads --
    def _slots_locked(self, ids: Iterable[str], column: str = "id") -> np.ndarray:
        out = []
        for chunk in _chunks(list(ids), 500):
            cur = self._conn.execute(f"SELECT slot FROM items WHERE {column} IN ({','.join('?' * len(chunk))})",
                                     chunk)
            out.extend(r[0] for r in cur)
        return np.asarray(out, dtype=np.int64)

    def _segment_slots_locked(self, parents: Iterable[str]) -> np.ndarray:
        return self._slots_locked(parents, column="parent")

    def slots_of(self, ids: list[str]) -> dict[str, int]:
        with self._mutex:
            found = {}
            for chunk in _chunks(ids, 500):
                q = f"SELECT id, slot FROM items WHERE parent IS NULL AND id IN ({','.join('?' * len(chunk))})"
                found.update(self._conn.execute(q, chunk).fetchall())
        return found

    def rows_for_slots(self, slots: Iterable[int], with_spans: bool = False) -> dict[int, tuple]:
        """slot -> (id, metadata); with_spans: (id, metadata, parent or None, (start, end) or None)."""
        slots = [int(s) for s in slots]
        out: dict[int, tuple] = {}
        with self._mutex:
            for chunk in _chunks(slots, 500):
                q = ("SELECT slot, id, modality, uri, payload, parent, span_start, span_end FROM items "
                     f"WHERE slot IN ({','.join('?' * len(chunk))})")
                for slot, id_, modality, uri, payload, parent, a, b in self._conn.execute(q, chunk):
                    meta = {"modality": modality, "uri": uri, "payload": {} if payload == "{}" else json.loads(payload)}
                    out[slot] = (id_, meta, parent, None if a is None else (a, b)) if with_spans else (id_, meta)
        return out

    def filter_slots(self, flt: dict) -> np.ndarray:
        where, params = compile_filter(flt)
        with self._mutex:
            rows = self._conn.execute(f"SELECT slot FROM items WHERE {where} ORDER BY slot", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def live_slots(self) -> np.ndarray:
        with self._mutex:
            rows = self._conn.execute("SELECT slot FROM items ORDER BY slot").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def _counts_locked(self) -> tuple[int, int]:
        """(items without windows, every row), from the cache or counted."""
        if self._counts is None:
            items = self._conn.execute("SELECT COUNT(*) FROM items WHERE parent IS NULL").fetchone()[0]
            rows = self._conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            self._counts = (items, rows)
        return self._counts

    def count(self) -> int:
        """Items (windows not counted)."""
        with self._mutex:
            return self._counts_locked()[0]

    def rows(self) -> int:
        """Every live row: items and their windows."""
        with self._mutex:
            return self._counts_locked()[1]

    # -- persistence --
    def save(self, path: str) -> None:
        dst = sqlite3.connect(path)
        try:
            with self._mutex:
                self._conn.backup(dst)
        finally:
            dst.close()

    @classmethod
    def load(cls, path: str) -> "MetadataStore":
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            mem = sqlite3.connect(":memory:", check_same_thread=False)
            src.backup(mem)
        finally:
            src.close()
        return cls(mem)

    def close(self) -> None:
        self._conn.close()


def _chunks(seq: list, n: int):
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
