"""The ingest ledger: which entries are in the index, and with what content, so a rerun skips them.

One JSON line per entry written, `{"id": ..., "digest": ...}`, appended and fsync'd only after the index
acknowledged the batch: what the ledger holds is in the index (the progress bar counts ledger lines, so
"reported done" means exactly this). A kill can leave a torn last line, which is ignored, and entries the
index took but the ledger did not yet record, which the next run embeds again (upserts are idempotent).

A run starts by reconciling: entries of the ledger that the index no longer holds (deleted since, or lost
by a backend that does not fsync each write, such as Milvus Lite on power loss) are dropped, so they are
ingested again rather than skipped. The later line wins when an id appears twice (its content changed).

Actors test membership on `known_keys()`: one sorted uint64 per (id, digest), 8 bytes an entry, so a ledger
of ten million entries costs each actor 80 MB rather than a dict of strings.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from omniembed.index.fsio import fsync_dir

RECONCILE_CHUNK = 1024


class Ledger:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[str, str] = {}
        self._handle = None

    def load(self) -> "Ledger":
        self.entries = {}
        if not self.path.exists():
            return self
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                    self.entries[row["id"]] = row["digest"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line torn by a kill mid-write
        return self

    def reconcile(self, present: Callable[[list[str]], list[bool]]) -> int:
        """Drop entries the index does not hold (`present(ids)` -> bools); rewrite the file compacted.
        Returns how many were dropped."""
        ids = list(self.entries)
        missing = []
        for start in range(0, len(ids), RECONCILE_CHUNK):
            chunk = ids[start:start + RECONCILE_CHUNK]
            missing += [i for i, here in zip(chunk, present(chunk)) if not here]
        for i in missing:
            del self.entries[i]
        self._rewrite()
        return len(missing)

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for id_, digest in self.entries.items():
                handle.write(_line(id_, digest))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        fsync_dir(str(self.path.parent))

    def known_keys(self) -> np.ndarray:
        return np.unique(np.fromiter((entry_key(i, d) for i, d in self.entries.items()), np.uint64,
                                     count=len(self.entries)))

    def record(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Append (id, digest) pairs durably; call after the index acknowledged them."""
        pairs = list(pairs)
        if not pairs:
            return
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")
        self._handle.write("".join(_line(i, d) for i, d in pairs))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.entries.update(pairs)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def entry_key(id_: str, digest: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{id_}\n{digest}".encode("utf-8"), digest_size=8).digest(), "little")


def contains(keys: np.ndarray, key: int) -> bool:
    if not len(keys):
        return False
    at = int(np.searchsorted(keys, np.uint64(key)))
    return at < len(keys) and int(keys[at]) == key


def _line(id_: str, digest: str) -> str:
    return json.dumps({"id": id_, "digest": digest}, ensure_ascii=False) + "\n"
