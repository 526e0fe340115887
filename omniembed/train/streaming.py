"""Streamed training data (`data.shards`, or `data.stream: true` on a JSONL manifest): records are read,
shuffled, decoded and tokenized in DataLoader worker processes while the trunk trains, so memory is bounded
by the buffers whatever the corpus size (bench/results/train_scale.md).

Who reads what. Every rank runs `data.loader_workers` workers; each (rank, worker) pair is one of S streams.
Each epoch the read units (omniembed.data.sources: one shard, or a run of manifest lines) are put in a seeded
order and dealt round-robin to the streams, so no record is read by two streams in an epoch; with fewer
units than streams every stream reads all units and keeps every S-th record. A stream shuffles raw records
(bytes, not yet parsed or decoded) in a buffer of `data.shuffle_buffer`, seeded by (seed, epoch, stream),
then parses and tokenizes what leaves the buffer. Streams never end: epoch e+1 follows e, reshuffled.

The stream position. Every element carries (worker, epoch, index in that worker's epoch order), and the
training side consumes the workers strictly in turn (StreamBatches), whatever order they deliver in. The
position a checkpoint records is, per rank, the consumption count and each worker's next (epoch, index);
a resumed run starts each worker there, skipping the raw records before it without parsing or decoding
them, so it reads exactly what the unbroken run would have read. On another world size or worker count the
positions do not map onto the new streams: the run restarts the earliest epoch any stream was in, from its
start (records of that epoch already trained on are read again; none is skipped), and says so.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from omniembed.data.manifest import Document, Item
from omniembed.data.sources import Raw, Unit, UnreadableShard, parse_raw, plan_units, read_raw
from omniembed.errors import ConfigError, ManifestError, MediaError

log = logging.getLogger("omniembed.train")
CHUNK = 32  # elements a worker sends at once (the consumer's order is per element, whatever the chunking)
# chunks a worker may have ready ahead of the consumer: enough to cover its shuffle buffer's refill at an
# epoch's start (reading shuffle_buffer raw records) without the trainer waiting
PREFETCH_CHUNKS = 8


@dataclass
class StreamSettings:
    """What a worker needs to rebuild its tokenizer and its share of the stream (pickled to workers)."""

    units: list[Unit]
    tok_dir: str
    windowing: dict | None
    seed: int
    rank: int
    world: int
    workers: int
    shuffle_buffer: int
    label: str | None = None  # eval.label under a label hit rule: items of one label are not negatives


def stream_units(source, streams: int) -> list[Unit]:
    """The read units of `data.shards` (or a manifest to stream), cut finer where a manifest has the lines."""
    return plan_units(source, min_units=streams)


def group_label(group: str) -> int:
    """A duplicate-group label the same on every rank and in every worker (no shared table needed)."""
    return int.from_bytes(hashlib.blake2b(group.encode("utf-8"), digest_size=8).digest(), "little") >> 1


class RecordStream(torch.utils.data.IterableDataset):
    """One rank's share of the corpus as an endless stream of tokenized elements (dicts): kind "item"
    (a CorpusItem), "document" (the body's ids), or "skip" (a rejected or held-out record, or an empty
    epoch), each with w, epoch and index."""

    def __init__(self, settings: StreamSettings, start: list[tuple[int, int]]):
        self.s, self.start = settings, start

    def _tokenizer(self):
        from omniembed.tokenization.document import DocumentTokenizer
        from omniembed.tokenization.store import load_tokenizers
        from omniembed.tokenization.windows import Windowing
        from omniembed.train.corpus import _Tokenize

        toks = load_tokenizers(Path(self.s.tok_dir))
        doc = DocumentTokenizer.from_tokenizers(toks.text, toks.image, toks.audio, video_fps=toks.config.video_fps)
        windowing = Windowing.from_dict(self.s.windowing) if self.s.windowing else None
        return _Tokenize(doc, toks.config.sample_rate, toks.config.video_fps, windowing, cache=False)

    def __iter__(self) -> Iterator[list[dict]]:
        """Chunks of up to CHUNK elements (an epoch's last may be shorter): the DataLoader's prefetch counts
        chunks, so a worker works ahead by whole chunks while the trunk trains, not by a record or two."""
        info = torch.utils.data.get_worker_info()
        w = info.id if info is not None else 0
        per_rank = max(1, self.s.workers)  # loader_workers 0: the one stream is this process
        sid, streams = self.s.rank * per_rank + w, self.s.world * per_rank
        tok = self._tokenizer()
        epoch, skip = self.start[w]
        while True:
            k, raws = -1, []
            for k, raw in enumerate(self._shuffled(epoch, sid, streams)):
                if k >= skip:
                    raws.append((k, raw))
                    if len(raws) == CHUNK:
                        yield tokenize_chunk(raws, w, epoch, tok, self.s.label)
                        raws = []
            if raws:
                yield tokenize_chunk(raws, w, epoch, tok, self.s.label)
            elif k < 0 and skip == 0:  # nothing for this stream this epoch: still take a turn, so the consumer never waits
                yield [{"w": w, "epoch": epoch, "index": 0, "kind": "skip", "where": "", "reason": "empty epoch"}]
            epoch, skip = epoch + 1, 0

    def _raws(self, epoch: int, sid: int, streams: int) -> Iterator[Raw]:
        units = self.s.units
        order = np.random.default_rng([self.s.seed, epoch, 7]).permutation(len(units))
        if len(units) >= streams:
            for u in order[sid::streams]:
                yield from _read(units[u])
            return
        n = 0  # fewer units than streams: every stream reads everything and keeps its every S-th record
        for u in order:
            for raw in _read(units[u]):
                if n % streams == sid:
                    yield raw
                n += 1

    def _shuffled(self, epoch: int, sid: int, streams: int) -> Iterator[Raw]:
        """The stream's raw records through a seeded shuffle buffer (a classic reservoir of fixed size)."""
        size = self.s.shuffle_buffer
        rng = np.random.default_rng([self.s.seed, epoch, sid, 11])
        buf: list[Raw] = []
        for raw in self._raws(epoch, sid, streams):
            if len(buf) < size:
                buf.append(raw)
                continue
            j = int(rng.integers(size))
            buf[j], raw = raw, buf[j]
            yield raw
        for j in rng.permutation(len(buf)):
            yield buf[j]


def _read(unit: Unit) -> Iterator[Raw]:
    try:
        yield from read_raw(unit)
    except UnreadableShard as err:
        log.warning("%s; the rest of this shard is not trained on", err)


def tokenize_chunk(raws: list[tuple[int, Raw]], w: int, epoch: int, tok,
                   label: str | None = None) -> list[dict]:
    """A chunk of raw records parsed and tokenized (in a worker), its items' images encoded in one batch."""
    parsed = [(k, raw, _parse(raw)) for k, raw in raws]
    tok.encode_images([r.media["image"] for _, _, r in parsed if isinstance(r, Item) and "image" in r.media
                       and r.split != "heldout"])
    return [{"w": w, "epoch": epoch, "index": k, **tokenize_record(raw, record, tok, label)}
            for k, raw, record in parsed]


def _parse(raw: Raw):
    try:
        return parse_raw(raw)
    except ManifestError as err:
        return err


def tokenize_record(raw: Raw, record, tok, label: str | None = None) -> dict:
    """One parsed record (or its ManifestError) tokenized: the element's kind and payload; an item's "label"
    is its training group (omniembed.train.corpus.training_group) as a number."""
    from omniembed.train.corpus import corpus_item, group_key, training_group

    if isinstance(record, ManifestError):
        log.warning("skipping %s", record)
        return {"kind": "skip", "where": raw.where, "reason": str(record)}
    if record.split == "heldout":
        return {"kind": "skip", "where": raw.where, "reason": "held out"}
    if isinstance(record, Item):
        item, _ = corpus_item(record, tok, "train")
        group = training_group(group_key(record), record.attributes, label)
        return {"kind": "item", "item": item, "id": record.id, "label": group_label(group)}
    assert isinstance(record, Document)
    try:
        body = tok.document(record)
    except MediaError as err:
        log.warning("document %s skipped: %s", record.id, err)
        return {"kind": "skip", "where": raw.where, "reason": str(err)}
    return {"kind": "document", "body": body, "id": record.id}


def _as_is(x):
    return x


class StreamReader:
    """The consumer side: elements in strict worker turn (worker p mod W for the p-th), and the position."""

    def __init__(self, settings: StreamSettings, state: dict | None = None):
        self.s = settings
        self.W = max(1, settings.workers)
        self.positions = [(0, 0)] * self.W
        self.consumed = 0
        if state is not None:
            self.positions = [tuple(p) for p in state["positions"]]
            self.consumed = int(state["consumed"])
        self._iter = None
        self._stash = [collections.deque() for _ in range(self.W)]

    def _loader(self):
        dataset = RecordStream(self.s, list(self.positions))
        if self.s.workers == 0:
            return iter(dataset)
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=self.s.workers,
                                             collate_fn=_as_is, prefetch_factor=PREFETCH_CHUNKS,
                                             multiprocessing_context="fork" if os.name == "posix" else None)
        return iter(loader)

    def next(self) -> dict:
        if self._iter is None:
            self._iter = self._loader()
        w = self.consumed % self.W
        while not self._stash[w]:
            got = next(self._iter)
            self._stash[got[0]["w"]].extend(got)
        element = self._stash[w].popleft()
        self.positions[w] = (element["epoch"], element["index"] + 1)
        self.consumed += 1
        return element

    def state_dict(self) -> dict:
        return {"positions": [list(p) for p in self.positions], "consumed": self.consumed}

    def close(self) -> None:
        self._iter = None  # the DataLoader's workers stop when its iterator is collected


def restart_state(states: list[dict], workers: int) -> dict:
    """The position for a run on another world size or worker count: the earliest epoch any saved stream
    was in, from its start, for every new stream."""
    epoch = min(p[0] for s in states for p in s["positions"])
    return {"positions": [[epoch, 0]] * max(1, workers), "consumed": 0}
