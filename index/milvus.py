"""The Milvus backend: the same Index API over a Milvus collection (Milvus Lite in-process, or a server/cluster).

One collection row per item and one per long-clip window. What is stored, and why:
  pk          VARCHAR  hex digest of the item id (windows: of id + U+001F + window number). Ids may hold any
                       printable character; digests keep every id out of Milvus's expression language.
  id          VARCHAR  the item's id (a window row carries its item's id and window >= 0)
  window      INT64    -1 for an item row, the window's number for a window row
  item_h      VARCHAR  digest of the item id: a replace or delete drops the item's windows by it
  vec         FLOAT_VECTOR(dim)    the unit vector
  vec_<p>     FLOAT_VECTOR(p)      its first p components re-normalised, one field per stored Matryoshka prefix
  modality, uri, payload (JSON), span_start, span_end
  terms       ARRAY<VARCHAR>  one digest per filterable fact: ("modality", v), ("uri", v) and every JSON
                       scalar of the payload reached through object keys, typed as the FAISS backend's SQLite
                       compares them (1 == 1.0, "1" != 1, true != 1, null only where stored). A filter becomes
                       `array_contains_any(terms, [...]) and ...`: one term per key, any of its values. So the
                       filter language, its validation and its answers are those of the FAISS backend exactly.
The index's own settings (dim, kind, prefixes, adaptive default) live in the collection's properties, so any
replica that opens the collection reads them.

Durability: a write returns once Milvus acknowledged it. Milvus Lite (pure Python) writes its WAL to the OS
before acknowledging and fsyncs it on close and on `snapshot()`: an acknowledged write survives the process
being killed (tests/index/test_crash.py), not a power cut before the next snapshot. A Milvus server
acknowledges once its WAL (message storage) has the write.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import threading
from typing import Any, Iterable
from urllib.parse import parse_qs, urlparse

import numpy as np

from omniembed.hits import Hit, StoredItem

from .checks import (
    Adaptive,
    check_ids,
    check_query,
    check_segments,
    check_vectors,
    default_adaptive,
    resolve_adaptive,
)
from .collapse import collapse
from .errors import IndexClosedError, IndexInputError, IndexUnavailableError
from .matryoshka import normalize, rerank, truncate
from .metadata import SEGMENT_SEP, clean_metadata, parse_filter

SCHEMES = ("milvus-lite", "http", "https", "tcp", "grpc")
DEFAULT_COLLECTION = "omniembed"
SETTINGS_KEY = "omniembed.settings"
MAX_TERMS = 4096  # Milvus's largest ARRAY capacity: filterable facts per item
MAX_VARCHAR = 65535  # Milvus's longest VARCHAR, in bytes: a uri or modality longer than this is refused
MAX_TOPK = 16384  # Milvus's largest limit per search
WRITE_ROWS = 512  # rows per insert call (a few MB per message at 1k dims)
# Milvus Lite searches unflushed rows by a scan in Python (0.7 s for 16 queries over 20k x 256 rows, 0.07 s
# once flushed into indexed segments): a flush after this many rows written keeps the scanned part small.
FLUSH_ROWS = 8192
FUNNEL_UNION = 4096  # shortlisted rows one funnel re-rank call may name
KINDS = {"flat": "FLAT", "hnsw": "HNSW", "ivfpq": "IVF_PQ"}
DEFAULTS = {"flat": {}, "hnsw": {"M": 32, "ef_construction": 200, "ef_search": 64},
            "ivfpq": {"nlist": 1024, "pq_m": 16, "nbits": 8, "nprobe": 16}}


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _canonical(value: Any) -> str:
    """A JSON scalar as the filter compares it: numbers by value whatever their type, the rest by type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, str):
        return "s:" + value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 63:
        return f"n:{int(value)}"
    return f"n:{value!r}" if isinstance(value, float) else f"n:{value}"


def _term(column: str, field: str | None, value: Any) -> str:
    return _digest(f"{column}\x1f{field or ''}\x1f{_canonical(value)}")


def _payload_terms(payload: dict, prefix: str = "") -> Iterable[str]:
    from .metadata import _FIELD

    for key, value in payload.items():
        if not (isinstance(key, str) and _FIELD.match(key) and "." not in key):
            continue  # a key no dotted filter name can reach
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from _payload_terms(value, path)
        elif not isinstance(value, list):
            yield _term("payload", path, value)


def terms_of(meta: dict) -> list[str]:
    terms = [_term(col, None, meta[col]) for col in ("modality", "uri") if meta[col] is not None]
    terms.extend(_payload_terms(meta["payload"]))
    return sorted(set(terms))


def filter_expression(flt: dict) -> str:
    """A filter dict (metadata.parse_filter) -> a Milvus boolean expression over `terms` (hex literals only)."""
    clauses = []
    for col, field, values in parse_filter(flt):
        digests = ", ".join(f'"{_term(col, field, v)}"' for v in values)
        clauses.append(f"array_contains_any(terms, [{digests}])")
    return " and ".join(clauses)


def _store_call(method):
    """Milvus's own failures (server down, timeouts, refusals) -> IndexUnavailableError naming the index."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        from pymilvus.exceptions import MilvusException

        try:
            return method(self, *args, **kwargs)
        except MilvusException as exc:
            raise IndexUnavailableError(f"{self.root}: Milvus failed the call: {exc}") from exc
    return call


@dataclasses.dataclass(frozen=True)
class MilvusTarget:
    """Where a Milvus index lives, from its URI."""

    uri: str  # as given
    lite_path: str | None  # a Milvus Lite data folder, or None for a server
    server: str | None  # http(s)://host:port of a server
    collection: str
    token: str | None

    @classmethod
    def parse(cls, uri: str, token: str | None = None) -> "MilvusTarget":
        u = urlparse(uri)
        if u.scheme not in SCHEMES:
            raise IndexInputError(f"{uri!r}: not a Milvus URI (milvus-lite:///path/db or http://host:19530)")
        query = parse_qs(u.query)
        collection = query.get("collection", [DEFAULT_COLLECTION])[0]
        if not collection.replace("_", "a").isalnum() or not collection[0].isalpha():
            raise IndexInputError(f"{uri!r}: collection {collection!r} must be letters, digits and _ starting "
                                  "with a letter")
        token = token or os.environ.get("OMNIEMBED_MILVUS_TOKEN") or None
        if u.scheme == "milvus-lite":
            path = (u.netloc + u.path) or ""
            if not path:
                raise IndexInputError(f"{uri!r}: no path; write milvus-lite:///absolute/path/db")
            return cls(uri, os.path.abspath(path), None, collection, token)
        scheme = "https" if u.scheme == "https" else "http"
        if not u.hostname:
            raise IndexInputError(f"{uri!r}: no host")
        return cls(uri, None, f"{scheme}://{u.hostname}:{u.port or 19530}", collection, token)


def _connect(target: MilvusTarget):
    from pymilvus import MilvusClient

    if target.lite_path is None:
        return MilvusClient(uri=target.server, token=target.token or "")
    # Milvus Lite runs in this process, serving its gRPC adapter on 127.0.0.1 only (milvus_lite.server_manager).
    from milvus_lite.server_manager import server_manager_instance

    os.makedirs(os.path.dirname(target.lite_path) or ".", exist_ok=True)
    local = server_manager_instance.start_and_get_uri(target.lite_path)
    if local is None:
        raise IndexInputError(f"{target.uri}: Milvus Lite could not start on {target.lite_path} (see the log)")
    return MilvusClient(uri=local)


class MilvusIndex:
    """An index in a Milvus collection. `MilvusIndex.open_or_create(uri, dim=...)`; the Index API otherwise."""

    backend = "milvus"

    def __init__(self, target: MilvusTarget, client, settings: dict):
        self.target = target
        self.root = target.uri
        self._client = client
        self.dim: int = settings["dim"]
        self.kind: str = settings["kind"]
        self.params: dict = settings["params"]
        self.prefixes: list[int] = sorted(settings["prefixes"])
        self.adaptive_default = Adaptive(**settings["adaptive"])
        self.adaptive_on: bool = settings["adaptive_on"]
        self.recovery_notes: list[str] = []
        self._write = threading.Lock()  # a replace is two calls (drop windows, upsert): one writer at a time here
        self._unflushed = 0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open_or_create(cls, uri: str, dim: int | None = None, kind: str = "flat", *, prefixes: Iterable[int] = (),
                       adaptive: bool | Adaptive | dict = False, token: str | None = None,
                       **params: Any) -> "MilvusIndex":
        """Open the collection the URI names, or create it (needs dim) with vector fields for the full vector,
        each Matryoshka prefix in `prefixes` and the adaptive shortlist prefix."""
        target = MilvusTarget.parse(uri, token)
        client = _connect(target)
        if client.has_collection(target.collection):
            settings = cls._read_settings(client, target)  # dim and kind are only for a new collection
            client.load_collection(target.collection)  # a reopened collection starts released
            return cls(target, client, settings)
        if not isinstance(dim, int) or dim < 1:
            client.close()
            raise IndexInputError(f"{uri}: no index there yet and no positive dim to create one (got {dim!r})")
        if kind not in KINDS:
            client.close()
            raise IndexInputError(f"unknown index kind {kind!r} for Milvus (one of {sorted(KINDS)})")
        unknown = set(params) - set(DEFAULTS[kind])
        if unknown:
            client.close()
            raise IndexInputError(f"unknown parameters for a {kind} Milvus index: {sorted(unknown)} "
                                  f"(allowed: {sorted(DEFAULTS[kind])})")
        ad = resolve_adaptive(adaptive, default_adaptive(dim), dim)
        stored = sorted({int(p) for p in prefixes if 0 < int(p) < dim} | ({ad.prefix} if ad.prefix < dim else set()))
        settings = {"omniembed_index": 1, "dim": dim, "kind": kind, "params": {**DEFAULTS[kind], **params},
                    "prefixes": stored, "adaptive": dataclasses.asdict(ad), "adaptive_on": bool(adaptive)}
        try:
            cls._create_collection(client, target, settings)
        except Exception:
            # replicas starting together race to create the collection: the loser opens the winner's
            if not client.has_collection(target.collection):
                client.close()
                raise
            settings = cls._read_settings(client, target)
            client.load_collection(target.collection)
        return cls(target, client, settings)

    @staticmethod
    def _read_settings(client, target: MilvusTarget) -> dict:
        desc = client.describe_collection(target.collection)
        try:
            settings = json.loads((desc.get("properties") or {}).get(SETTINGS_KEY) or "")
            assert settings.get("omniembed_index") == 1
        except (ValueError, AssertionError, AttributeError):
            raise IndexInputError(f"{target.uri}: collection {target.collection!r} was not made by omniembed "
                                  f"(its properties hold no {SETTINGS_KEY!r})") from None
        return settings

    @staticmethod
    def _create_collection(client, target: MilvusTarget, settings: dict) -> None:
        from pymilvus import DataType

        dim, kind, params = settings["dim"], settings["kind"], settings["params"]
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
        schema.add_field("id", DataType.VARCHAR, max_length=2048)
        schema.add_field("window", DataType.INT64)
        schema.add_field("item_h", DataType.VARCHAR, max_length=32)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        for p in settings["prefixes"]:
            schema.add_field(f"vec_{p}", DataType.FLOAT_VECTOR, dim=p)
        schema.add_field("modality", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("uri", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("has_modality", DataType.BOOL)
        schema.add_field("has_uri", DataType.BOOL)
        schema.add_field("payload", DataType.JSON)
        schema.add_field("span_start", DataType.FLOAT)
        schema.add_field("span_end", DataType.FLOAT)
        schema.add_field("terms", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_TERMS,
                         max_length=32)
        index_params = client.prepare_index_params()
        for name in ["vec", *(f"vec_{p}" for p in settings["prefixes"])]:
            if name != "vec" or kind == "flat":
                # prefix fields serve exact prefix searches and adaptive shortlists: exact (flat) like FAISS's
                index_params.add_index(field_name=name, index_type="FLAT", metric_type="IP")
            elif kind == "hnsw":
                index_params.add_index(field_name=name, index_type="HNSW", metric_type="IP",
                                       params={"M": params["M"], "efConstruction": params["ef_construction"]})
            else:
                index_params.add_index(field_name=name, index_type="IVF_PQ", metric_type="IP",
                                       params={"nlist": params["nlist"], "m": params["pq_m"],
                                               "nbits": params["nbits"]})
        client.create_collection(target.collection, schema=schema, consistency_level="Strong",
                                 properties={SETTINGS_KEY: json.dumps(settings, separators=(",", ":"))})
        # sync=False: an index on an empty collection is ready at once, and pymilvus's wait polls an RPC that
        # Milvus Lite lacks (0.5 s of sleeps per field); loading the collection is what searches need.
        client.create_index(target.collection, index_params, sync=False)
        client.load_collection(target.collection)

    def close(self) -> None:
        with self._write:
            if self._closed:
                return
            self._closed = True
            try:
                self._client.close()
            finally:
                if self.target.lite_path is not None:
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(self.target.lite_path)  # fsyncs its WAL

    def __enter__(self) -> "MilvusIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _live(self):
        if self._closed:
            raise IndexClosedError(f"{self.root}: index is closed")
        return self._client

    @_store_call
    def snapshot(self) -> None:
        """Persist what is acknowledged (Milvus flush: sealed segments, and for Milvus Lite an fsync'd WAL)."""
        self._live().flush(self.target.collection)

    @_store_call
    def compact(self) -> None:
        self._live().compact(self.target.collection)

    # ------------------------------------------------------------------ writes
    def _rows(self, ids, vectors, metas, segments) -> list[dict]:
        rows = []
        for n, (i, v, m) in enumerate(zip(ids, vectors, metas)):
            terms = terms_of(m)
            if len(terms) > MAX_TERMS:
                raise IndexInputError(f"metadata for id {i!r}: {len(terms)} filterable values, over the Milvus "
                                      f"backend's limit of {MAX_TERMS}")
            for key in ("modality", "uri"):
                if m[key] is not None and len(m[key].encode("utf-8", "surrogatepass")) > MAX_VARCHAR:
                    raise IndexInputError(f"metadata for id {i!r}: {key} is over the Milvus backend's limit of "
                                          f"{MAX_VARCHAR} bytes")
            base = {"id": i, "item_h": _digest(i), "modality": m["modality"] or "", "uri": m["uri"] or "",
                    "has_modality": m["modality"] is not None, "has_uri": m["uri"] is not None,
                    "payload": m["payload"], "terms": terms}
            rows.append({**base, **self._vector_fields(v), "pk": _digest(i), "window": -1,
                         "span_start": 0.0, "span_end": 0.0})
            seg = None if segments is None else segments[n]
            for w, (span, wv) in enumerate(zip(*seg) if seg else ()):
                rows.append({**base, **self._vector_fields(wv), "pk": _digest(f"{i}{SEGMENT_SEP}{w}"), "window": w,
                             "span_start": span[0], "span_end": span[1]})
        return rows

    def _vector_fields(self, v: np.ndarray) -> dict:
        out = {"vec": v.tolist()}
        for p in self.prefixes:
            out[f"vec_{p}"] = normalize(v[None, :p])[0].tolist()
        return out

    @_store_call
    def upsert(self, ids: Iterable[str], vectors: np.ndarray, metadata: Iterable[dict | None] | None = None,
               segments: Iterable[tuple | None] | None = None) -> None:
        """Insert or replace items (and their windows). Returns once Milvus acknowledged every row."""
        ids = check_ids(ids)
        vectors = check_vectors(vectors, len(ids), self.dim, ids)
        metadata = [None] * len(ids) if metadata is None else list(metadata)
        if len(metadata) != len(ids):
            raise IndexInputError(f"{len(metadata)} metadata entries for {len(ids)} ids")
        metas = [clean_metadata(m, f"metadata for id {i!r}") for i, m in zip(ids, metadata)]
        segments = None if segments is None else check_segments(list(segments), ids, self.dim)
        rows = self._rows(ids, vectors, metas, segments)
        with self._write:
            client = self._live()
            self._drop_windows(client, ids)
            for start in range(0, len(rows), WRITE_ROWS):
                client.upsert(self.target.collection, rows[start:start + WRITE_ROWS])
            self._unflushed += len(rows)
            if self._unflushed >= FLUSH_ROWS:
                client.flush(self.target.collection)
                self._unflushed = 0

    def _drop_windows(self, client, ids: list[str]) -> None:
        for start in range(0, len(ids), 256):
            hs = ", ".join(f'"{_digest(i)}"' for i in ids[start:start + 256])
            client.delete(self.target.collection, filter=f"window >= 0 and item_h in [{hs}]")

    @_store_call
    def delete(self, ids: Iterable[str]) -> int:
        """Delete items (and their windows); unknown ids are ignored. Returns how many existed."""
        ids = check_ids(ids)
        with self._write:
            client = self._live()
            present = [item.id for item in self._get(client, ids, vectors=False) if item is not None]
            if present:
                for start in range(0, len(present), 256):
                    client.delete(self.target.collection, ids=[_digest(i) for i in present[start:start + 256]])
                self._drop_windows(client, present)
        return len(present)

    # ------------------------------------------------------------------ reads
    @_store_call
    def get(self, ids: Iterable[str]) -> list[StoredItem | None]:
        """Stored items (vector normalised as stored), None for ids not present."""
        return self._get(self._live(), check_ids(ids, allow_duplicates=True), vectors=True)

    def _get(self, client, ids: list[str], vectors: bool) -> list[StoredItem | None]:
        fields = ["id", "modality", "uri", "has_modality", "has_uri", "payload"] + (["vec"] if vectors else [])
        found: dict[str, StoredItem] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 256):
            for row in client.get(self.target.collection, ids=[_digest(i) for i in unique[start:start + 256]],
                                  output_fields=fields):
                vec = np.asarray(row["vec"], np.float32) if vectors else None
                found[row["id"]] = StoredItem(row["id"], vec, _meta(row))
        return [found.get(i) for i in ids]

    @_store_call
    def __len__(self) -> int:
        return self._count("window < 0")

    @_store_call
    def _count(self, expr: str) -> int:
        client = self._live()
        if self.target.lite_path is not None:
            # Milvus Lite 3.2 can hold a row twice after a kill between its flush's manifest commit and the WAL's
            # deletion (the WAL is replayed with the same sequence numbers). get and search keep one copy of a
            # primary key; its count(*) counts both. So count distinct keys (it materialises every row anyway).
            rows = client.query(self.target.collection, filter=expr, output_fields=["pk"])
            return len({r["pk"] for r in rows})
        res = client.query(self.target.collection, filter=expr, output_fields=["count(*)"])
        return int(res[0]["count(*)"]) if res else 0

    @_store_call
    def search(self, query: np.ndarray, k: int = 10, *, dim: int | None = None, filter: dict | None = None,
               adaptive: bool | Adaptive | dict | None = None, ef_search: int | None = None,
               nprobe: int | None = None, refine: int | None = None) -> list[list[Hit]]:
        """Top-k hits for each query, best first; the same arguments and answers as the FAISS Index.

        dim: exact on a stored prefix field; on any other prefix, the full vector's top max(shortlist, k)
        re-ranked on that prefix. adaptive: the shortlist on the prefix field, re-ranked exactly on the full
        vector (Milvus's funnel search). refine is an IVF-PQ knob of the FAISS backend and is ignored here."""
        q, dim = check_query(query, k, dim, self.dim)
        ad = self.adaptive_default if adaptive is None and self.adaptive_on else adaptive
        ad = resolve_adaptive(ad, self.adaptive_default, self.dim) if ad else None
        expr = filter_expression(filter) if filter is not None else ""
        client = self._live()
        fetch = k
        while True:
            rows = self._search_rows(client, q, fetch, dim, expr, ad, ef_search, nprobe)
            hits = [collapse(r, k) for r in rows]
            exhausted = all(len(r) < fetch for r in rows) or fetch >= MAX_TOPK
            if exhausted or all(len(h) >= k for h in hits):
                return hits
            fetch = min(MAX_TOPK, fetch * 4)  # windows took places: ask for more rows

    def _search_rows(self, client, q, fetch, dim, expr, ad, ef_search, nprobe) -> list[list[tuple]]:
        target = dim or self.dim
        if ad is not None and min(ad.prefix, target) < target:
            p = self._stored_prefix(ad.prefix)
            if p is not None and p < target and (dim is None or dim in self.prefixes):
                return self._funnel(client, q, fetch, target, p, max(ad.shortlist, fetch), expr)
            return self._reranked(client, q, fetch, target, p, max(ad.shortlist, fetch), expr)
        if dim is None:
            return self._ann(client, q, "vec", self.dim, fetch, expr, ef_search, nprobe)
        if dim in self.prefixes:
            return self._ann(client, q, f"vec_{dim}", dim, fetch, expr, None, None)
        return self._reranked(client, q, fetch, dim, None, max(self.adaptive_default.shortlist, fetch), expr)

    def _stored_prefix(self, p: int) -> int | None:
        below = [s for s in self.prefixes if s <= p]
        return below[-1] if below else (self.prefixes[0] if self.prefixes else None)

    def _ann(self, client, q, field, p, fetch, expr, ef_search, nprobe, with_vec=False, exact=False
             ) -> list[list[tuple]]:
        search_params: dict = {"metric_type": "IP", "params": {}}
        if exact and field == "vec" and self.kind == "hnsw":
            search_params["params"]["ef"] = max(self.params["ef_search"], 4 * fetch)
        elif exact:
            pass
        elif field == "vec" and self.kind == "hnsw":
            search_params["params"]["ef"] = max(ef_search or self.params["ef_search"], fetch)
        elif field == "vec" and self.kind == "ivfpq":
            search_params["params"]["nprobe"] = nprobe or self.params["nprobe"]
        fields = ["id", "window", "modality", "uri", "has_modality", "has_uri", "payload", "span_start", "span_end"]
        res = client.search(self.target.collection, data=truncate(q, p).tolist() if p < self.dim else q.tolist(),
                            anns_field=field, limit=min(fetch, MAX_TOPK), filter=expr,
                            output_fields=fields + (["vec"] if with_vec else []), search_params=search_params)
        out = []
        for hits in res:
            rows = []
            for h in hits:
                e = h["entity"]
                span = (float(e["span_start"]), float(e["span_end"])) if e["window"] >= 0 else None
                row = (float(h["distance"]), e["id"], _meta(e), e["id"] if e["window"] >= 0 else None, span)
                rows.append((row, np.asarray(e["vec"], np.float32)) if with_vec else row)
            out.append(rows)
        return out

    def _funnel(self, client, q, fetch, target, p, shortlist, expr) -> list[list[tuple]]:
        """Milvus's funnel search: a shortlist on prefix field p, then an exact search on the target field
        restricted to shortlisted rows (`pk in [...]`), so Milvus scores them and only the top `fetch` come
        back. Queries share that second call in groups: each is scored against the union of the group's
        shortlists, a superset of its own, so it can only find closer items than its own shortlist holds."""
        stage1 = client.search(self.target.collection, data=truncate(q, p).tolist(), anns_field=f"vec_{p}",
                               limit=min(shortlist, MAX_TOPK), filter=expr, output_fields=["pk"],
                               search_params={"metric_type": "IP", "params": {}})
        field = "vec" if target == self.dim else f"vec_{target}"
        out: list[list[tuple]] = [[] for _ in range(len(q))]
        group: list[int] = []
        union: dict[str, None] = {}

        def run():
            if group and union:
                within = "pk in [" + ", ".join(f'"{pk}"' for pk in union) + "]"
                rows = self._ann(client, q[group], field, target, min(fetch, len(union)), within, None, None,
                                 exact=True)
                for qi, r in zip(group, rows):
                    out[qi] = r
            group.clear()
            union.clear()

        for qi, hits in enumerate(stage1):
            pks = [h["pk"] for h in hits]
            if group and len(union) + len(pks) > FUNNEL_UNION:
                run()
            group.append(qi)
            union.update(dict.fromkeys(pks))
        run()
        return out

    def _reranked(self, client, q, fetch, target, p, shortlist, expr) -> list[list[tuple]]:
        """Shortlist on prefix field p (None: the full vector), re-rank exactly on the first `target` dims."""
        field, pd = ("vec", self.dim) if p is None else (f"vec_{p}", p)
        cands = self._ann(client, q, field, pd, shortlist, expr, None, None, with_vec=True)
        out = []
        qt = truncate(q, target) if target < self.dim else q
        for qi, rows in enumerate(cands):
            if not rows:
                out.append([])
                continue
            base = np.stack([v for _, v in rows])
            scores, order = rerank(qt[qi:qi + 1], np.arange(len(rows))[None, :], base, min(fetch, len(rows)),
                                   target if target < self.dim else None)
            out.append([(float(s), *rows[int(j)][0][1:]) for s, j in zip(scores[0], order[0]) if j >= 0])
        return out

    @_store_call
    def stats(self) -> dict:
        items = len(self)
        rows = self._count("")
        return {
            "path": self.root, "backend": "milvus", "collection": self.target.collection,
            "server": self.target.server or f"milvus-lite in process ({self.target.lite_path})",
            "dim": self.dim, "kind": self.kind, "params": dict(self.params), "count": items, "windows": rows - items,
            "prefix_fields": list(self.prefixes),
            "adaptive": {**dataclasses.asdict(self.adaptive_default), "default_on": self.adaptive_on},
            "recovery_notes": list(self.recovery_notes),
        }


def _meta(entity: dict) -> dict:
    payload = entity.get("payload") or {}
    if isinstance(payload, str):
        payload = json.loads(payload)
    return {"modality": entity["modality"] if entity.get("has_modality") else None,
            "uri": entity["uri"] if entity.get("has_uri") else None, "payload": payload}


def is_milvus_uri(uri: str) -> bool:
    return isinstance(uri, str) and urlparse(uri).scheme in SCHEMES and "://" in uri


__all__ = ["MilvusIndex", "MilvusTarget", "filter_expression", "is_milvus_uri", "terms_of"]
