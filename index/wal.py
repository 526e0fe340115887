"""The write-ahead log: an append-only file of length-prefixed, checksummed records.

A record is acknowledged only after its bytes are fsync'd. Replay reads records until the end; a torn tail
(the one record a crash interrupted) is dropped, but a bad record followed by good ones is corruption and
is reported, never skipped silently.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import zlib

from .errors import IndexCorruptError
from .fsio import fsync_dir

FILE_MAGIC = b"OEWAL\x00\x01\x00"
RECORD_MARK = 0x4F45524C  # "LREO": lets a scan find record starts after a damaged one
# mark u32, payload length u32, lsn u64, crc32 u32 over (length, lsn, payload)
_HEAD = struct.Struct("<IIQI")


@dataclasses.dataclass
class Replay:
    records: list[tuple[int, bytes]]  # (lsn, payload) in log order
    good_end: int  # byte offset just past the last good record
    torn_bytes: int  # bytes after good_end that were a torn tail (dropped)


def encode_record(lsn: int, payload: bytes) -> bytes:
    crc = zlib.crc32(struct.pack("<IQ", len(payload), lsn) + payload)
    return _HEAD.pack(RECORD_MARK, len(payload), lsn, crc) + payload


def _record_at(buf: memoryview, pos: int) -> tuple[int, bytes, int] | None:
    """(lsn, payload, end) of a valid record starting at pos, else None."""
    if len(buf) - pos < _HEAD.size:
        return None
    mark, length, lsn, crc = _HEAD.unpack_from(buf, pos)
    end = pos + _HEAD.size + length
    if mark != RECORD_MARK or end > len(buf):
        return None
    payload = bytes(buf[pos + _HEAD.size : end])
    if zlib.crc32(struct.pack("<IQ", length, lsn) + payload) != crc:
        return None
    return lsn, payload, end


def _next_valid_record(buf: memoryview, start: int) -> int | None:
    mark = struct.pack("<I", RECORD_MARK)
    raw = buf.obj
    pos = raw.find(mark, start)
    while pos != -1:
        if _record_at(buf, pos) is not None:
            return pos
        pos = raw.find(mark, pos + 1)
    return None


def read_log(path: str | os.PathLike, after_lsn: int = -1) -> Replay:
    """Every good record of the log at `path`; raises IndexCorruptError on damage that is not a torn tail."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < len(FILE_MAGIC):
        # The file was created but its header never reached the disk: an empty log.
        if FILE_MAGIC.startswith(data):
            return Replay([], 0, len(data))
        raise IndexCorruptError(str(path), "not a write-ahead log (bad header)")
    if data[: len(FILE_MAGIC)] != FILE_MAGIC:
        raise IndexCorruptError(str(path), "not a write-ahead log (bad header)")
    buf = memoryview(data)
    pos = len(FILE_MAGIC)
    records: list[tuple[int, bytes]] = []
    last_lsn = after_lsn
    while pos < len(buf):
        rec = _record_at(buf, pos)
        if rec is None:
            later = _next_valid_record(buf, pos + 1)
            if later is not None:
                raise IndexCorruptError(
                    str(path), f"damaged record at byte {pos} followed by a good one at byte {later}"
                )
            return Replay(records, pos, len(buf) - pos)
        lsn, payload, end = rec
        if lsn <= last_lsn and records:
            raise IndexCorruptError(str(path), f"record at byte {pos} has lsn {lsn} after lsn {last_lsn}")
        if lsn > after_lsn:
            records.append((lsn, payload))
        last_lsn = max(last_lsn, lsn)
        pos = end
    return Replay(records, pos, 0)


class WriteAheadLog:
    """An open log for appending. `append` returns once the record is on stable storage."""

    def __init__(self, path: str | os.PathLike, good_end: int | None = None):
        self.path = os.fspath(path)
        fresh = not os.path.exists(self.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fresh or os.fstat(self._fd).st_size < len(FILE_MAGIC):
            os.ftruncate(self._fd, 0)
            os.write(self._fd, FILE_MAGIC)
            os.fsync(self._fd)
            fsync_dir(os.path.dirname(self.path) or ".")
        elif good_end is not None and good_end < os.fstat(self._fd).st_size:
            # Cut the torn tail first: a record appended after garbage would be unreachable on replay.
            os.ftruncate(self._fd, good_end)
            os.fsync(self._fd)
        self.size = os.lseek(self._fd, 0, os.SEEK_END)

    def append(self, lsn: int, payload: bytes) -> None:
        rec = memoryview(encode_record(lsn, payload))
        try:
            while rec:
                n = os.write(self._fd, rec)
                rec = rec[n:]
            os.fdatasync(self._fd) if hasattr(os, "fdatasync") else os.fsync(self._fd)
        except OSError:
            # A half-written record (disk full) would hide every later one on replay: take it back.
            os.ftruncate(self._fd, self.size)
            os.lseek(self._fd, self.size, os.SEEK_SET)
            raise
        self.size = os.lseek(self._fd, 0, os.SEEK_CUR)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
