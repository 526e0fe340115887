"""Atomic snapshots: a directory written under a temporary name, fsync'd, checksummed, then renamed.

Layout of an index directory:
    snap-00000007/   state.json (+ checksums of the files beside it), vectors.npy, meta.sqlite, ann.faiss
    wal-00000007.log records written after snapshot 7
The two newest snapshots and their logs are kept: if the newest snapshot is damaged, the one before it
plus both logs rebuild the same state.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Callable

from .errors import IndexCorruptError
from .fsio import atomic_write_bytes, file_crc32, fsync_dir, fsync_path

STATE = "state.json"
_SNAP = re.compile(r"^snap-(\d{8})$")
_WAL = re.compile(r"^wal-(\d{8})\.log$")
FORMAT = 1


def snap_dir(root: str, gen: int) -> str:
    return os.path.join(root, f"snap-{gen:08d}")


def wal_path(root: str, gen: int) -> str:
    return os.path.join(root, f"wal-{gen:08d}.log")


def snapshot_gens(root: str) -> list[int]:
    return sorted(int(m.group(1)) for n in os.listdir(root) if (m := _SNAP.match(n)))


def wal_gens(root: str) -> list[int]:
    return sorted(int(m.group(1)) for n in os.listdir(root) if (m := _WAL.match(n)))


def write_snapshot(root: str, gen: int, state: dict, writers: dict[str, Callable[[str], None]]) -> None:
    """Write snapshot `gen`: each writer fills its file; state.json records sizes and CRCs; then rename."""
    final = snap_dir(root, gen)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    files = {}
    for name, write in writers.items():
        path = os.path.join(tmp, name)
        write(path)
        fsync_path(path)
        files[name] = {"size": os.path.getsize(path), "crc32": file_crc32(path)}
    atomic_write_bytes(os.path.join(tmp, STATE), json.dumps({**state, "format": FORMAT, "files": files}).encode())
    fsync_dir(tmp)
    if os.path.exists(final):  # a leftover of a crash between rename and cleanup of the same gen
        shutil.rmtree(final)
    os.rename(tmp, final)
    fsync_dir(root)


def read_snapshot(root: str, gen: int) -> tuple[dict, str]:
    """(state, directory) of snapshot `gen` after checking every file's size and CRC."""
    folder = snap_dir(root, gen)
    state_path = os.path.join(folder, STATE)
    try:
        with open(state_path, "rb") as f:
            state = json.loads(f.read())
    except FileNotFoundError:
        raise IndexCorruptError(state_path, "snapshot has no state.json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(state_path, f"unreadable state ({exc})") from None
    if state.get("format") != FORMAT or not isinstance(state.get("files"), dict):
        raise IndexCorruptError(state_path, f"unknown snapshot format {state.get('format')!r}")
    for name, want in state["files"].items():
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise IndexCorruptError(path, "file missing from snapshot")
        size = os.path.getsize(path)
        if size != want["size"]:
            raise IndexCorruptError(path, f"truncated or grown: {size} bytes, snapshot recorded {want['size']}")
        if file_crc32(path) != want["crc32"]:
            raise IndexCorruptError(path, "checksum mismatch: file is corrupt")
    return state, folder


def prune(root: str, keep_from_gen: int) -> None:
    """Remove snapshots and logs older than `keep_from_gen`, and stale temporary folders."""
    for name in os.listdir(root):
        path = os.path.join(root, name)
        m = _SNAP.match(name) or _WAL.match(name)
        if m and int(m.group(1)) < keep_from_gen:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        elif name.endswith(".tmp"):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
    fsync_dir(root)
