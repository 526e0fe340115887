"""The write-ahead log: records round-trip, a torn tail is dropped, damage in the middle is reported."""

import os

import pytest

from omniembed.index.errors import IndexCorruptError
from omniembed.index.wal import WriteAheadLog, read_log


def _write(path, payloads, start=1):
    wal = WriteAheadLog(path)
    for i, p in enumerate(payloads):
        wal.append(start + i, p)
    wal.close()


def test_appended_records_read_back_in_order_with_their_lsns(tmp_path):
    path = tmp_path / "w.log"
    _write(path, [b"one", b"", b"three" * 1000])
    replay = read_log(path)
    assert replay.records == [(1, b"one"), (2, b""), (3, b"three" * 1000)]
    assert replay.torn_bytes == 0 and replay.good_end == os.path.getsize(path)


def test_records_at_or_below_after_lsn_are_skipped(tmp_path):
    path = tmp_path / "w.log"
    _write(path, [b"a", b"b", b"c"])
    assert [lsn for lsn, _ in read_log(path, after_lsn=2).records] == [3]


@pytest.mark.parametrize("cut", [1, 5, 17, 30])
def test_a_torn_last_record_is_dropped_and_cut_before_new_appends(tmp_path, cut):
    path = tmp_path / "w.log"
    _write(path, [b"first", b"second-record-payload"])
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - cut)
    replay = read_log(path)
    assert replay.records == [(1, b"first")] and replay.torn_bytes > 0
    wal = WriteAheadLog(path, good_end=replay.good_end)
    wal.append(2, b"after-crash")
    wal.close()
    assert read_log(path).records == [(1, b"first"), (2, b"after-crash")]


def test_a_flipped_byte_in_the_last_record_counts_as_torn_tail(tmp_path):
    path = tmp_path / "w.log"
    _write(path, [b"first", b"second"])
    with open(path, "r+b") as f:
        f.seek(-2, os.SEEK_END)
        f.write(b"X")
    assert read_log(path).records == [(1, b"first")]


def test_damage_followed_by_good_records_raises_corrupt_error_naming_the_offset(tmp_path):
    path = tmp_path / "w.log"
    _write(path, [b"first-payload", b"second", b"third"])
    with open(path, "r+b") as f:
        f.seek(8 + 20 + 3)  # inside the first record's payload
        f.write(b"\xff")
    with pytest.raises(IndexCorruptError, match="damaged record at byte 8"):
        read_log(path)


def test_a_file_that_is_not_a_log_raises_corrupt_error(tmp_path):
    path = tmp_path / "w.log"
    path.write_bytes(b"definitely not a log file")
    with pytest.raises(IndexCorruptError, match="bad header"):
        read_log(path)


def test_a_header_cut_short_by_a_crash_reads_as_an_empty_log(tmp_path):
    path = tmp_path / "w.log"
    path.write_bytes(b"OEW")
    assert read_log(path).records == []
    wal = WriteAheadLog(path, good_end=0)
    wal.append(1, b"x")
    wal.close()
    assert read_log(path).records == [(1, b"x")]
