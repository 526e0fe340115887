"""The Index: string ids over FAISS slots, full vectors, SQLite metadata, WAL + snapshots, adaptive search.

Every write is one WAL record, fsync'd before the call returns, then applied in memory; a snapshot folds
the log into files and starts a new log. The full-precision vectors are kept beside the FAISS structure so
`get`, exact re-rank, prefix-dim search and rebuilds need nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from typing import Any, Iterable

import faiss
import numpy as np

from omniembed.hits import Hit, StoredItem

from . import records
from . import snapshot as snap
from .ann import AnnIndex, gpu_available, resolve_params
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
from .errors import IndexClosedError, IndexCorruptError, IndexInputError
from .lock import RWLock
from .matryoshka import exact_topk, rerank, truncate
from .metadata import SEGMENT_SEP, MetadataStore, clean_metadata
from .wal import WriteAheadLog, read_log

log = logging.getLogger(__name__)

# Below this many allowed items a filtered search scans them exactly: cheaper than a selector over the
# whole structure, and exact. Above it the ANN structure searches with an IDSelector.
SUBSET_EXACT_MAX = 20_000
# HNSW dead nodes cost search time; past this fraction a snapshot rebuilds the graph without them.
COMPACT_DEAD_FRACTION = 0.25
# Below this much work (queries x rows x dims) a search runs on one OpenMP thread: a parallel region wakes every
# worker, which costs more than a small search takes (one query over 1,000 x 96: 330 -> 161 us; one query over
# 100k x 256: 9.5 -> 7.3 ms); 16 queries over 100k x 256 still take half the time on two threads.
PARALLEL_SEARCH_WORK = 10_000_000
DEFAULT_SNAPSHOT_BYTES = 256 << 20


class Index:
    """A persistent vector index in one directory. Create with `Index.create`, reopen with `Index.open`."""

    def __init__(self, root: str, state: dict):
        self.root = root
        self.dim: int = state["dim"]
        self.kind: str = state["kind"]
        self.params: dict = state["params"]
        self.adaptive_default = Adaptive(**state["adaptive"])
        self.adaptive_on: bool = state["adaptive_on"]
        self.snapshot_bytes: int = state["snapshot_bytes"]
        self._lsn: int = state["lsn"]
        self._gen: int = state["gen"]
        self._n_slots: int = state["n_slots"]
        self._gen_of_last_log: int = state["gen"]
        self._vectors = np.zeros((max(16, self._n_slots), self.dim), np.float32)
        self._live = np.zeros(len(self._vectors), bool)
        self._meta = MetadataStore()
        self._ann = AnnIndex(self.dim, self.kind, self.params)
        self._prefix: dict[int, faiss.Index] = {}
        self._prefix_mutex = threading.Lock()
        self._lock = RWLock()
        self._wal: WriteAheadLog | None = None
        self.recovery_notes: list[str] = []

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        dim: int,
        kind: str = "flat",
        metric: str = "ip",
        *,
        adaptive: bool | Adaptive | dict = False,
        snapshot_bytes: int = DEFAULT_SNAPSHOT_BYTES,
        **params: Any,
    ) -> "Index":
        """A new empty index in directory `path` (created; must be absent or empty).

        kind: flat | hnsw (M, ef_construction, ef_search) | ivfpq (nlist, pq_m, nbits, nprobe, refine,
        train_size, rotate). Defaults in ann.DEFAULTS. metric: only "ip" (inner product on L2-normalised vectors, i.e. cosine).
        adaptive: make Matryoshka adaptive search the default (True, or Adaptive/dict(prefix, shortlist)).
        snapshot_bytes: a write that grows the log past this takes a snapshot (0 = only explicit ones).
        """
        root = os.fspath(path)
        if metric != "ip":
            raise IndexInputError(f"metric {metric!r} is not supported; vectors are normalised and compared by 'ip'")
        if not isinstance(dim, int) or dim < 1:
            raise IndexInputError(f"dim must be a positive int, got {dim!r}")
        try:
            params = resolve_params(kind, dim, params)
        except ValueError as exc:
            raise IndexInputError(str(exc)) from None
        if os.path.exists(root) and os.listdir(root):
            raise IndexInputError(f"{root}: directory exists and is not empty; use Index.open")
        ad = resolve_adaptive(adaptive, default_adaptive(dim), dim)
        os.makedirs(root, exist_ok=True)
        state = {
            "dim": dim, "kind": kind, "params": params, "adaptive": dataclasses.asdict(ad),
            "adaptive_on": bool(adaptive), "snapshot_bytes": int(snapshot_bytes), "lsn": 0, "gen": 0, "n_slots": 0,
        }
        index = cls(root, state)
        index._write_snapshot(0)
        index._wal = WriteAheadLog(snap.wal_path(root, 0))
        return index

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Index":
        """Load the newest good snapshot and replay the logs after it. A torn log tail (an interrupted
        write, never acknowledged) is dropped; damage that would lose acknowledged writes raises
        IndexCorruptError."""
        root = os.fspath(path)
        if not os.path.isdir(root):
            raise IndexInputError(f"{root}: no index directory here")
        gens = snap.snapshot_gens(root)
        if not gens:
            raise IndexCorruptError(root, "no snapshot folder (snap-*) found; not an index or never created")
        failures: list[IndexCorruptError] = []
        index = None
        for gen in reversed(gens):
            try:
                index = cls._load_snapshot(root, gen)
                break
            except IndexCorruptError as exc:
                log.warning("snapshot %d unusable: %s", gen, exc)
                failures.append(exc)
        if index is None:
            raise IndexCorruptError(root, "no readable snapshot: " + "; ".join(str(f) for f in failures))
        index.recovery_notes.extend(f"skipped damaged snapshot: {f}" for f in failures)
        last_good_end = index._replay_logs()
        index._wal = WriteAheadLog(snap.wal_path(root, index._gen_of_last_log), good_end=last_good_end)
        if failures:
            # Move damaged snapshots aside (kept for inspection) and fold the recovered state into a new one.
            for gen in gens:
                if gen > index._gen:
                    os.rename(snap.snap_dir(root, gen), os.path.join(root, f"damaged-snap-{gen:08d}"))
            with index._lock.write():
                index._snapshot_locked(compact_ok=False)
        return index

    @classmethod
    def _load_snapshot(cls, root: str, gen: int) -> "Index":
        state, folder = snap.read_snapshot(root, gen)
        index = cls(root, state)
        index._gen = gen
        try:
            vectors = np.load(os.path.join(folder, "vectors.npy"))
            index._meta = MetadataStore.load(os.path.join(folder, "meta.sqlite"))
            live = index._meta.live_slots()
            if vectors.shape != (index._n_slots, index.dim) or (len(live) and live[-1] >= index._n_slots):
                raise ValueError(f"vectors {vectors.shape} disagree with {index._n_slots} slots x {index.dim}")
            index._vectors = np.zeros((max(16, len(vectors)), index.dim), np.float32)
            index._vectors[: len(vectors)] = vectors
            index._live = np.zeros(len(index._vectors), bool)
            index._live[live] = True
            ann_path = os.path.join(folder, "ann.faiss")
            if os.path.exists(ann_path):
                blob = np.fromfile(ann_path, dtype=np.uint8)
                index._ann = AnnIndex.deserialize(index.dim, index.kind, index.params, blob)
            else:  # flat: rebuilding from the vectors is cheaper than storing a second copy
                index._ann.add(index._vectors[live], live)
        except (ValueError, OSError, RuntimeError) as exc:
            raise IndexCorruptError(folder, f"snapshot content unreadable: {exc}") from None
        return index

    def _replay_logs(self) -> int:
        """Apply every logged write after the snapshot; returns the good length of the newest log."""
        wal_gens = [g for g in snap.wal_gens(self.root) if g >= self._gen]
        self._gen_of_last_log = wal_gens[-1] if wal_gens else self._gen
        good_end = None
        for i, gen in enumerate(wal_gens):
            if i and gen != wal_gens[i - 1] + 1:
                raise IndexCorruptError(snap.wal_path(self.root, wal_gens[i - 1] + 1), "log file missing")
            path = snap.wal_path(self.root, gen)
            replay = read_log(path, after_lsn=self._lsn)
            if replay.torn_bytes and gen != wal_gens[-1]:
                raise IndexCorruptError(path, f"older log ends in {replay.torn_bytes} unreadable bytes")
            if replay.torn_bytes:
                self.recovery_notes.append(f"dropped torn tail of {replay.torn_bytes} bytes in {path}")
            for lsn, payload in replay.records:
                if lsn != self._lsn + 1:
                    raise IndexCorruptError(path, f"log jumps from lsn {self._lsn} to {lsn}: writes missing")
                try:
                    op, ids, vectors, metas, segments = records.decode(payload, self.dim)
                except (ValueError, KeyError) as exc:
                    raise IndexCorruptError(path, f"record lsn {lsn} is malformed: {exc}") from None
                if op == records.OP_UPSERT:
                    self._apply_upsert(ids, vectors, metas, segments)
                else:
                    self._apply_delete(ids)
                self._lsn = lsn
            good_end = replay.good_end
        return good_end

    def close(self) -> None:
        with self._lock.write():
            if self._wal is not None:
                self._wal.close()
                self._wal = None
                self._meta.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ writes
    def upsert(self, ids: Iterable[str], vectors: np.ndarray, metadata: Iterable[dict | None] | None = None,
               segments: Iterable[tuple | None] | None = None) -> None:
        """Insert or replace items. Vectors (N, D) are stored L2-normalised. Returns once durable.

        segments: per item None, or (spans [(start, end) seconds], window vectors (W, D)): a long clip's
        windows, stored beside its vector so a search hit can name the moment (Hit.span). Replacing or
        deleting the item replaces or deletes its windows."""
        ids = check_ids(ids)
        vectors = check_vectors(vectors, len(ids), self.dim, ids)
        metadata = [None] * len(ids) if metadata is None else list(metadata)
        if len(metadata) != len(ids):
            raise IndexInputError(f"{len(metadata)} metadata entries for {len(ids)} ids")
        metas = [clean_metadata(m, f"metadata for id {i!r}") for i, m in zip(ids, metadata)]
        segments = None if segments is None else check_segments(list(segments), ids, self.dim)
        payload = records.encode_upsert(ids, vectors, metas, segments)
        with self._lock.write():
            self._log(payload)
            self._apply_upsert(ids, vectors, metas, segments)
            self._maybe_snapshot()

    def delete(self, ids: Iterable[str]) -> int:
        """Delete items by id; unknown ids are ignored. Returns how many existed. Durable on return."""
        ids = check_ids(ids)
        with self._lock.write():
            found = self._meta.slots_of(ids)
            present = [i for i in ids if i in found]
            if present:
                self._log(records.encode_delete(present))
                self._apply_delete(present)
                self._maybe_snapshot()
        return len(present)

    def _log(self, payload: bytes) -> None:
        if self._wal is None:
            raise IndexClosedError(f"{self.root}: index is closed")
        self._wal.append(self._lsn + 1, payload)
        self._lsn += 1

    def _apply_upsert(self, ids: list[str], vectors: np.ndarray, metas: list[dict], segments: list | None = None):
        windows = [] if segments is None else [(i, m, sp, v) for i, m, seg in zip(ids, metas, segments)
                                                if seg is not None for sp, v in zip(*seg)]
        if windows:
            vectors = np.concatenate([vectors, np.stack([w[3] for w in windows])])
        slots = np.arange(self._n_slots, self._n_slots + len(vectors), dtype=np.int64)
        self._grow(self._n_slots + len(vectors))
        self._n_slots += len(vectors)
        self._vectors[slots] = vectors
        counters: dict[str, int] = {}
        rows = []
        for slot, (i, m, sp, _) in zip(slots[len(ids):], windows):
            counters[i] = counters.get(i, -1) + 1
            rows.append((int(slot), f"{i}{SEGMENT_SEP}{counters[i]}", m, i, sp[0], sp[1]))
        old = self._meta.upsert([(int(s), i, m) for s, i, m in zip(slots, ids, metas)], rows)
        self._kill(old)
        self._live[slots] = True
        if self._ann.trained:
            self._ann.add(vectors, slots)
        elif self._live.sum() >= self.params.get("train_size", 0):
            self._train_and_fill()
        for p, pidx in self._prefix.items():
            pidx.add_with_ids(truncate(vectors, p), slots)

    def _apply_delete(self, ids: list[str]) -> None:
        self._kill(self._meta.delete(ids))

    def _kill(self, slots: np.ndarray) -> None:
        if not len(slots):
            return
        self._live[slots] = False
        self._ann.remove(slots)
        for pidx in self._prefix.values():
            pidx.remove_ids(faiss.IDSelectorBatch(slots))

    def _train_and_fill(self) -> None:
        """IVF-PQ: train once enough vectors exist, then index every live one (until then search is exact)."""
        live = np.flatnonzero(self._live[: self._n_slots])
        # k-means gains little past ~50 points per centroid and costs linear time in the sample.
        cap = max(self.params["train_size"], 50 * max(self.params["nlist"], 2 ** self.params["nbits"]))
        rng = np.random.default_rng(self._lsn)  # seeded by log position: a replay trains on the same sample
        sample = live if len(live) <= cap else rng.choice(live, cap, replace=False)
        self._ann.train(self._vectors[np.sort(sample)])
        for start in range(0, len(live), 65536):
            chunk = live[start : start + 65536]
            self._ann.add(self._vectors[chunk], chunk)

    def _grow(self, need: int) -> None:
        if need <= len(self._vectors):
            return
        cap = max(need, 2 * len(self._vectors))
        vectors = np.zeros((cap, self.dim), np.float32)
        vectors[: self._n_slots] = self._vectors[: self._n_slots]
        live = np.zeros(cap, bool)
        live[: self._n_slots] = self._live[: self._n_slots]
        self._vectors, self._live = vectors, live

    # ------------------------------------------------------------------ snapshots and compaction
    def snapshot(self) -> None:
        """Fold the log into a new snapshot (atomic) and start a new log; compacts HNSW first if needed."""
        with self._lock.write():
            self._snapshot_locked(compact_ok=True)

    flush = snapshot

    def compact(self) -> None:
        """Renumber live items densely and rebuild the ANN structure without dead slots, then snapshot."""
        with self._lock.write():
            self._compact_locked()
            self._snapshot_locked(compact_ok=False)

    def _maybe_snapshot(self) -> None:
        if self.snapshot_bytes and self._wal.size > self.snapshot_bytes:
            self._snapshot_locked(compact_ok=True)

    def _snapshot_locked(self, compact_ok: bool) -> None:
        if self._wal is None:
            raise IndexClosedError(f"{self.root}: index is closed")
        if compact_ok and self._dead_fraction() > COMPACT_DEAD_FRACTION:
            self._compact_locked()
        gen = max(snap.snapshot_gens(self.root) + snap.wal_gens(self.root) + [self._gen]) + 1
        self._write_snapshot(gen)
        self._wal.close()
        self._wal = WriteAheadLog(snap.wal_path(self.root, gen))
        self._gen = self._gen_of_last_log = gen
        gens = snap.snapshot_gens(self.root)
        snap.prune(self.root, keep_from_gen=gens[-2] if len(gens) > 1 else gens[-1])

    def _write_snapshot(self, gen: int) -> None:
        state = {
            "dim": self.dim, "kind": self.kind, "params": self.params,
            "adaptive": dataclasses.asdict(self.adaptive_default), "adaptive_on": self.adaptive_on,
            "snapshot_bytes": self.snapshot_bytes, "lsn": self._lsn, "gen": gen, "n_slots": self._n_slots,
        }
        writers = {
            "vectors.npy": lambda p: _save_npy(p, self._vectors[: self._n_slots]),
            "meta.sqlite": self._meta.save,
        }
        if self.kind != "flat":
            writers["ann.faiss"] = lambda p: self._ann.serialize().tofile(p)
        snap.write_snapshot(self.root, gen, state, writers)

    def _dead_fraction(self) -> float:
        return 1.0 - self._meta.rows() / self._n_slots if self._n_slots else 0.0

    def _compact_locked(self) -> None:
        live = self._meta.live_slots()  # sorted
        new = np.arange(len(live), dtype=np.int64)
        vectors = self._vectors[live]
        self._meta.remap(live, new)
        self._n_slots = len(live)
        self._vectors = np.zeros((max(16, len(live)), self.dim), np.float32)
        self._vectors[: len(live)] = vectors
        self._live = np.zeros(len(self._vectors), bool)
        self._live[new] = True
        trained = self._ann.trained
        self._ann.reset()
        if trained or self.kind != "ivfpq":
            for start in range(0, len(new), 65536):
                chunk = new[start : start + 65536]
                self._ann.add(self._vectors[chunk], chunk)
        self._prefix.clear()  # rebuilt on demand

    # ------------------------------------------------------------------ reads
    def get(self, ids: Iterable[str]) -> list[StoredItem | None]:
        """Stored items (vector normalised as stored), None for ids not present."""
        ids = check_ids(ids, allow_duplicates=True)
        with self._lock.read():
            slots = self._meta.slots_of(ids)
            rows = self._meta.rows_for_slots(slots.values())
            out: list[StoredItem | None] = []
            for i in ids:
                s = slots.get(i)
                out.append(None if s is None else StoredItem(i, self._vectors[s].copy(), rows[s][1]))
        return out

    def __len__(self) -> int:
        return self._meta.count()

    def search(
        self,
        query: np.ndarray,
        k: int = 10,
        *,
        dim: int | None = None,
        filter: dict | None = None,
        adaptive: bool | Adaptive | dict | None = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
        refine: int | None = None,
    ) -> list[list[Hit]]:
        """Top-k hits for each query (D,) or (Q, D), best first.

        dim: score on the first `dim` components re-normalised (exact). filter: see metadata.compile_filter.
        adaptive: Matryoshka shortlist on a prefix + exact re-rank (None = the index's default).
        ef_search / nprobe / refine: per-call HNSW / IVF-PQ knobs (refine: PQ candidates per hit re-ranked).
        """
        q, dim = check_query(query, k, dim, self.dim)
        ad = self.adaptive_default if adaptive is None and self.adaptive_on else adaptive
        ad = resolve_adaptive(ad, self.adaptive_default, self.dim) if ad else None
        with self._lock.read():
            allowed = self._meta.filter_slots(filter) if filter is not None else None
            rows = self._meta.rows() if allowed is None else len(allowed)
            windows = self._meta.rows() - self._meta.count()  # rows that are long clips' windows
            # an item and its windows are one hit: fetch more rows until k distinct items (or every row) are in
            fetch = k if not windows else min(rows, 4 * k)
            while True:
                with _search_threads(len(q) * rows * (dim or self.dim)):
                    scores, slots = self._search_rows(q, fetch, dim, allowed, ad, ef_search, nprobe, refine)
                if not windows:
                    return self._hits(scores, slots)
                hits = self._collapsed_hits(scores, slots, k)
                if fetch >= rows or all(len(h) >= k for h in hits):
                    return hits
                fetch = min(rows, 2 * fetch)

    def _search_rows(self, q, k, dim, allowed, ad, ef_search, nprobe, refine) -> tuple[np.ndarray, np.ndarray]:
        if allowed is not None and len(allowed) <= SUBSET_EXACT_MAX:
            return self._exact_subset(q, k, dim, allowed)
        if ad is not None:
            return self._adaptive(q, k, dim, allowed, ad)
        if dim is not None:
            return self._prefix_search(q, k, dim, allowed, k)
        return self._ann_search(q, k, allowed, ef_search, nprobe, refine)

    def _exact_subset(self, q, k, dim, subset) -> tuple[np.ndarray, np.ndarray]:
        base = self._vectors[subset]  # (S, D) copy of the allowed rows
        if dim is not None:
            base, q = truncate(base, dim), truncate(q, dim)
        scores, rows = exact_topk(q, base, k)
        return scores, np.where(rows >= 0, subset[np.maximum(rows, 0)] if len(subset) else -1, -1)

    def _selector(self, allowed: np.ndarray | None):
        """An IDSelector for `allowed` slots, or for live slots where dead ones remain in the structure."""
        if allowed is None:
            if self._ann.removes or self._ann.ntotal == self._meta.rows():
                return None, None
            mask = self._live[: self._n_slots]
        else:
            mask = np.zeros(self._n_slots, bool)
            mask[allowed] = True
        bits = np.packbits(mask, bitorder="little")
        # The selector reads `bits` through a raw pointer: return both so the array outlives the search.
        return faiss.IDSelectorBitmap(self._n_slots, faiss.swig_ptr(bits)), bits

    def _ann_search(self, q, k, allowed, ef_search, nprobe, refine=None) -> tuple[np.ndarray, np.ndarray]:
        if not self._ann.trained or self._ann.ntotal == 0:
            subset = allowed if allowed is not None else np.flatnonzero(self._live[: self._n_slots])
            return self._exact_subset(q, k, None, subset)
        sel, _bits = self._selector(allowed)
        if self.kind != "ivfpq":
            refine = 0
        elif refine is None:
            refine = self.params["refine"]
        fetch = k * refine if refine > 1 else k
        scores, slots = self._ann.search(q, fetch, sel, ef_search=ef_search, nprobe=nprobe)
        if refine:
            # PQ scores are approximate: re-rank the candidates on the stored full vectors.
            scores, slots = rerank(q, slots, self._vectors, k)
        return self._fill_short(q, k, None, allowed, scores, slots)

    def _prefix_index(self, p: int) -> faiss.Index:
        """An exact flat index over the first `p` dims of every live vector, built once, kept by writes."""
        with self._prefix_mutex:
            if p not in self._prefix:
                pidx = faiss.IndexIDMap2(faiss.IndexFlatIP(p))
                live = np.flatnonzero(self._live[: self._n_slots])
                for start in range(0, len(live), 65536):
                    chunk = live[start : start + 65536]
                    pidx.add_with_ids(truncate(self._vectors[chunk], p), chunk)
                self._prefix[p] = pidx
            return self._prefix[p]

    def _prefix_search(self, q, k, p, allowed, fetch) -> tuple[np.ndarray, np.ndarray]:
        pidx = self._prefix_index(p)
        sel, _bits = self._selector(allowed) if allowed is not None else (None, None)
        params = faiss.SearchParameters(sel=sel) if sel is not None else None
        return pidx.search(truncate(q, p), fetch, params=params)

    def _adaptive(self, q, k, dim, allowed, ad: Adaptive) -> tuple[np.ndarray, np.ndarray]:
        target = dim or self.dim
        if ad.prefix >= target:  # no shorter prefix to shortlist on
            if dim:
                return self._prefix_search(q, k, dim, allowed, k)
            return self._ann_search(q, k, allowed, None, None)
        _, cand = self._prefix_search(q, k, ad.prefix, allowed, max(ad.shortlist, k))  # (Q, shortlist)
        qt = truncate(q, dim) if dim else q
        scores, slots = rerank(qt, cand, self._vectors, k, dim)
        return self._fill_short(q, k, dim, allowed, scores, slots)

    def _fill_short(self, q, k, dim, allowed, scores, slots) -> tuple[np.ndarray, np.ndarray]:
        """Redo exactly any query that came back with fewer than k hits although k matching items exist
        (a filter or dead HNSW nodes can starve a graph or an IVF probe)."""
        avail = self._meta.rows() if allowed is None else len(allowed)
        short = np.flatnonzero((slots >= 0).sum(axis=1) < min(k, avail))
        if len(short):
            subset = allowed if allowed is not None else np.flatnonzero(self._live[: self._n_slots])
            s2, i2 = self._exact_subset(q[short], k, dim, subset)
            scores, slots = scores.copy(), slots.copy()
            scores[short], slots[short] = s2, i2
        return scores, slots

    def _collapsed_hits(self, scores: np.ndarray, slots: np.ndarray, k: int) -> list[list[Hit]]:
        """Rows -> items: a window row stands for its item, an item scores its best row, and its span is the
        time of its best window among the rows found."""
        rows = self._meta.rows_for_slots(np.unique(slots[slots >= 0]), with_spans=True)
        return [collapse(((s, *rows[int(i)]) for s, i in zip(srow, irow) if i >= 0 and int(i) in rows), k)
                for srow, irow in zip(scores, slots)]

    def _hits(self, scores: np.ndarray, slots: np.ndarray) -> list[list[Hit]]:
        rows = self._meta.rows_for_slots(np.unique(slots[slots >= 0]))
        out = []
        for srow, irow in zip(scores, slots):
            hits = []
            for s, i in zip(srow, irow):
                if i >= 0 and int(i) in rows:  # a dead slot never surfaces, whatever the structure returned
                    id_, meta = rows[int(i)]
                    hits.append(Hit(id_, float(s), meta))
            out.append(hits)
        return out

    def stats(self) -> dict:
        with self._lock.read():
            live, rows = self._meta.count(), self._meta.rows()
            return {
                "path": self.root, "dim": self.dim, "kind": self.kind, "params": dict(self.params),
                "count": live, "windows": rows - live, "slots": self._n_slots, "dead_slots": self._n_slots - rows,
                "ann_entries": self._ann.ntotal, "trained": self._ann.trained,
                "adaptive": {**dataclasses.asdict(self.adaptive_default), "default_on": self.adaptive_on},
                "prefix_indexes": sorted(self._prefix), "lsn": self._lsn, "snapshot_gen": self._gen,
                "wal_bytes": self._wal.size if self._wal else 0, "gpu": gpu_available() and self.kind != "hnsw",
                "recovery_notes": list(self.recovery_notes),
            }


@contextlib.contextmanager
def _search_threads(work: int):
    """One OpenMP thread for a small search (PARALLEL_SEARCH_WORK). OpenMP keeps the thread count per thread, so
    this sets the calling thread's alone, and puts back what it had."""
    before = faiss.omp_get_max_threads()
    if work >= PARALLEL_SEARCH_WORK or before == 1:
        yield
        return
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array))
