"""`ingest()`: a manifest or shards -> Ray Data -> a pool of embedding actors -> the index, resumably.

    units (driver, one scan)  --from_items-->  read_unit (Ray tasks: parse, read bytes, digest)
        --map_batches-->  EmbedActor x N (one ONNX Embedder each)  --iter_batches-->  driver: index + ledger

The driver is the only writer: it upserts each batch the actors return, then records it in the ledger
(omniembed.ingest.ledger) and only then counts it done. Rejects go to a JSONL file with the reason, one
line each; the file is rewritten by every run (rejected entries are not in the ledger, so a rerun meets
them again and reports them again).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omniembed.errors import ConfigError

from .ledger import Ledger
from .sources import plan_units, read_unit

DEFAULT_BATCH = 32
INLINE_KEYS_BYTES = 64 << 10


@dataclass
class IngestResult:
    written: int = 0
    skipped: int = 0
    rejected: int = 0
    cut: int = 0
    windows: int = 0
    reconciled: int = 0  # ledger entries the index no longer held (ingested again)
    actors: int = 0  # distinct actor processes that embedded entries in this run
    seconds: float = 0.0
    startup_s: float = 0.0  # until the first batch came back: Ray start, actors loading the bundle
    after_startup: int = 0  # entries that came back after the first batch
    index_count: int = 0
    state: str = ""
    rejects: str = ""
    cut_ids: list[str] = field(default_factory=list)

    @property
    def steady_per_s(self) -> float:
        """Entries/s once the actors are up: what a large ingest converges to."""
        span = self.seconds - self.startup_s
        return self.after_startup / span if span > 0 else 0.0

    @property
    def items_per_s(self) -> float:
        return (self.written + self.skipped) / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "items_per_s": self.items_per_s, "steady_per_s": self.steady_per_s}


def default_state(index_uri: str) -> Path:
    """Where a run keeps its ledger when --state is not given: beside a FAISS folder, else under the cwd."""
    from omniembed.index.backends import backend_of

    if backend_of(index_uri) == "faiss":
        root = Path(index_uri).resolve()
        return root.parent / f"{root.name}.ingest"
    slug = hashlib.blake2b(index_uri.encode("utf-8"), digest_size=6).hexdigest()
    return Path.cwd() / ".omniembed-ingest" / slug


def ingest(source: str | list, bundle: str | os.PathLike, index_uri: str, *, actors: int = 1,
           ray_address: str | None = None, state: str | os.PathLike | None = None,
           rejects: str | os.PathLike | None = None, batch_size: int = DEFAULT_BATCH, segments: bool = False,
           kind: str = "flat", dim: int | None = None, token: str | None = None, threads: int | None = None,
           max_audio_seconds: float | None = None, max_video_seconds: float | None = None,
           progress: bool = True) -> IngestResult:
    """Embed every entry of `source` with `actors` Ray actors and write them to the index at `index_uri`."""
    from omniembed.index import open_index
    from omniembed.runtime.bundle import read_manifest

    if actors < 0:
        raise ConfigError(f"actors={actors}: must be 0 (embed in this process, no Ray) or more")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: must be at least 1")
    units = plan_units(source, min_units=4 * actors)
    manifest = read_manifest(bundle, verify=True)
    dims = sorted(int(d) for d in manifest["model"]["embed_dims"])
    if dim is not None and not 0 < dim <= dims[-1]:
        raise ConfigError(f"dim={dim}: the bundle embeds 1..{dims[-1]}")
    state_dir = Path(state) if state else default_state(str(index_uri))
    state_dir.mkdir(parents=True, exist_ok=True)
    rejects_path = Path(rejects) if rejects else state_dir / "rejects.jsonl"
    result = IngestResult(state=str(state_dir), rejects=str(rejects_path))

    from .cluster import connect

    cpus = os.cpu_count() or 1
    # Ray first: it forks its services, which must not happen under a live gRPC channel (Milvus)
    local = connect(ray_address, cpus=max(cpus, actors) + 1) if actors else False
    try:
        index = open_index(index_uri, dim=dim or dims[-1], kind=kind, prefixes=dims, token=token)
        try:
            if index.dim > dims[-1]:
                raise ConfigError(f"{index_uri}: the index holds {index.dim}-dim vectors; the bundle embeds "
                                  f"{dims[-1]}")
            fingerprint = _fingerprint(manifest, index.dim, segments)
            ledger = Ledger(state_dir / f"ledger-{fingerprint[:12]}.jsonl").load()
            result.reconciled = ledger.reconcile(lambda ids: [got is not None for got in index.get(ids)])
            started = time.perf_counter()
            writer = _Writer(index, ledger, rejects_path, result, progress, started)
            actor_args = {"bundle": str(Path(bundle).resolve()), "dim": index.dim, "segments": segments,
                          "threads": threads or max(1, cpus // max(1, actors)), "max_audio_seconds": max_audio_seconds,
                          "max_video_seconds": max_video_seconds}
            try:
                batches = (_results(units, fingerprint, ledger, actors, batch_size, actor_args) if actors
                           else _results_here(units, fingerprint, ledger, batch_size, actor_args))
                for batch in batches:
                    writer.take(batch)
            finally:
                writer.close()
                ledger.close()
                result.seconds = time.perf_counter() - started
            result.index_count = len(index)
        finally:
            index.close()
    finally:
        if local:
            import ray

            ray.shutdown()
    result.actors = len(writer.workers)
    return result


def _results(units, fingerprint: str, ledger: Ledger, actors: int, batch_size: int, actor_args: dict):
    """The Ray Data pipeline, as the batches of results the actors return."""
    import ray
    import ray.data

    from .cluster import quiet_data
    from .embedding import EmbedActor

    quiet_data()
    keys = ledger.known_keys()
    # small enough to travel inline with the actors' arguments; else once through the object store
    known = keys if keys.nbytes <= INLINE_KEYS_BYTES else ray.put(keys)
    ds = (ray.data.from_items([u.as_row() for u in units], override_num_blocks=max(1, len(units)))
          .flat_map(read_unit, fn_kwargs={"fingerprint": fingerprint}, num_cpus=0.5)
          .map_batches(EmbedActor, batch_size=batch_size, batch_format="numpy", num_cpus=1,
                       compute=ray.data.ActorPoolStrategy(size=actors),
                       fn_constructor_kwargs={**actor_args, "known": [known]}))
    yield from ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)


def _results_here(units, fingerprint: str, ledger: Ledger, batch_size: int, actor_args: dict):
    """The same work in this process, without Ray (--actors 0): one Embedder, units read in order."""
    from .embedding import EmbedActor
    from .sources import COLUMNS

    actor = EmbedActor(**actor_args, known=[ledger.known_keys()])
    rows: list[dict] = []

    def batch() -> dict:
        cols = {c: np.empty(len(rows), dtype=object) for c in COLUMNS}
        for j, row in enumerate(rows):
            for c in COLUMNS:
                cols[c][j] = row[c]
        rows.clear()
        return actor(cols)

    for unit in units:
        for row in read_unit(unit.as_row(), fingerprint):
            rows.append(row)
            if len(rows) == batch_size:
                yield batch()
    if rows:
        yield batch()


def _fingerprint(manifest: dict, dim: int, segments: bool) -> str:
    """The model and settings an entry's vector depends on: a different one makes every digest differ."""
    text = json.dumps({"bundle": manifest, "dim": dim, "segments": bool(segments)}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class _Writer:
    """The driver's half: batches of actor results into the index, the ledger and the rejects file."""

    def __init__(self, index, ledger: Ledger, rejects_path: Path, result: IngestResult, progress: bool,
                 started: float):
        self.index, self.ledger, self.result, self.started = index, ledger, result, started
        self.seen: dict[str, str] = {}
        self.workers: set[int] = set()
        rejects_path.parent.mkdir(parents=True, exist_ok=True)
        self.rejects = open(rejects_path, "w", encoding="utf-8")
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(unit="entry", desc="ingest", dynamic_ncols=True)

    def take(self, batch: dict[str, np.ndarray]) -> None:
        ids, metas, vectors, segs, done = [], [], [], [], []
        self.workers.update(int(w) for w, st in zip(batch["worker"], batch["status"]) if st == "ok")
        for j, status in enumerate(batch["status"]):
            id_, source, reason = str(batch["id"][j]), str(batch["source"][j]), str(batch["reason"][j])
            if status != "reject" and id_ in self.seen:
                status, reason = "reject", f"{source}: duplicate id {id_!r}; kept the one at {self.seen[id_]}"
            if status == "reject":
                self._reject(source, id_, reason)
                continue
            self.seen[id_] = source
            if status == "skip":
                self.result.skipped += 1
                continue
            ids.append(id_)
            metas.append(json.loads(str(batch["metadata"][j])))
            vectors.append(batch["vector"][j])
            segs.append(_segments(batch["windows"][j], str(batch["spans"][j]), self.index.dim))
            done.append((id_, str(batch["digest"][j])))
            if batch["cut"][j]:
                self.result.cut += 1
                if len(self.result.cut_ids) < 10:
                    self.result.cut_ids.append(id_)
        if ids:
            windows = sum(len(s[0]) for s in segs if s is not None)
            self.index.upsert(ids, np.stack(vectors), metas, segments=segs if windows else None)
            self.ledger.record(done)  # only now is it done: the index acknowledged it first
            self.result.written += len(ids)
            self.result.windows += windows
        if self.result.startup_s:
            self.result.after_startup += len(batch["status"])
        else:
            self.result.startup_s = time.perf_counter() - self.started
        if self.bar is not None:
            self.bar.update(len(batch["status"]))
            self.bar.set_postfix(written=self.result.written, skipped=self.result.skipped,
                                 rejected=self.result.rejected, refresh=False)

    def _reject(self, source: str, id_: str, reason: str) -> None:
        self.rejects.write(json.dumps({"source": source, "id": id_, "reason": reason}, ensure_ascii=False) + "\n")
        self.rejects.flush()
        self.result.rejected += 1

    def close(self) -> None:
        self.rejects.close()
        if self.bar is not None:
            self.bar.close()


def _segments(blob: Any, spans: str, dim: int):
    if not spans:
        return None
    win = np.frombuffer(bytes(blob), np.float32).reshape(-1, dim)
    return [tuple(s) for s in json.loads(spans)], win
