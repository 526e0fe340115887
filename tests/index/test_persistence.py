"""Persistence on real files: log replay, snapshots, torn tails, damaged snapshots and logs."""

import os
import shutil

import numpy as np
import pytest

from omniembed.index import Index, IndexCorruptError
from omniembed.index.snapshot import snapshot_gens, wal_gens


def _items(x, start, n):
    ids = [f"p{i}" for i in range(start, start + n)]
    meta = [{"modality": "text", "uri": f"u{i}", "payload": {"i": i}} for i in range(start, start + n)]
    return ids, x[start : start + n], meta


def _assert_holds(ix, x, indices, gone=()):
    items = ix.get([f"p{i}" for i in indices])
    for i, item in zip(indices, items):
        assert item is not None, f"p{i} lost"
        np.testing.assert_allclose(item.vector, x[i], atol=1e-6)
        assert item.metadata == {"modality": "text", "uri": f"u{i}", "payload": {"i": i}}
    assert all(item is None for item in ix.get([f"p{i}" for i in gone]))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_reopen_replays_every_logged_write_without_a_snapshot(make_index, vectors, tmp_path, kind):
    x = vectors(3000)
    ix = make_index(kind)
    ix.upsert(*_items(x, 0, 3000))
    ix.delete(["p1", "p2"])
    ix.close()
    ix = Index.open(tmp_path / "ix")
    _assert_holds(ix, x, [0, 3, 2999], gone=[1, 2])
    assert len(ix) == 2998 and ix.stats()["kind"] == kind
    assert [h.id for h in ix.search(x[3], k=1)[0]] == ["p3"]
    ix.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_snapshot_then_more_writes_reopen_to_the_same_state_and_keep_two_generations(
    make_index, vectors, tmp_path, kind
):
    x = vectors(3000)
    ix = make_index(kind)
    ix.upsert(*_items(x, 0, 2800))
    ix.snapshot()
    ix.upsert(*_items(x, 2800, 100))
    ix.snapshot()
    ix.upsert(*_items(x, 2900, 100))
    ix.delete(["p0"])
    before = [[h.id for h in row] for row in ix.search(x[:20], k=5)]
    ix.close()
    root = str(tmp_path / "ix")
    assert snapshot_gens(root) == [1, 2] and wal_gens(root) == [1, 2]
    ix = Index.open(root)
    _assert_holds(ix, x, [1, 2850, 2999], gone=[0])
    assert [[h.id for h in row] for row in ix.search(x[:20], k=5)] == before
    ix.close()


def test_a_torn_log_tail_is_dropped_and_later_writes_survive(make_index, vectors, tmp_path):
    x = vectors(100)
    ix = make_index("flat")
    ix.upsert(*_items(x, 0, 10))
    ix.upsert(*_items(x, 10, 10))
    ix.close()
    log = tmp_path / "ix" / "wal-00000000.log"
    with open(log, "r+b") as f:
        f.truncate(os.path.getsize(log) - 7)  # the second upsert was never acknowledged
    ix = Index.open(tmp_path / "ix")
    assert len(ix) == 10 and "torn tail" in ix.stats()["recovery_notes"][0]
    ix.upsert(*_items(x, 50, 5))
    ix.close()
    ix = Index.open(tmp_path / "ix")
    _assert_holds(ix, x, list(range(10)) + list(range(50, 55)), gone=range(10, 20))
    ix.close()


def _damage(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("victim", ["vectors.npy", "meta.sqlite", "ann.faiss", "state.json"])
def test_a_damaged_newest_snapshot_recovers_from_the_previous_one_with_no_loss(make_index, vectors, tmp_path, victim):
    x = vectors(400)
    ix = make_index("hnsw")
    ix.upsert(*_items(x, 0, 100))
    ix.snapshot()  # gen 1
    ix.upsert(*_items(x, 100, 100))
    ix.delete(["p5"])
    ix.snapshot()  # gen 2
    ix.upsert(*_items(x, 200, 100))
    ix.close()
    root = tmp_path / "ix"
    _damage(root / "snap-00000002" / victim)
    ix = Index.open(root)
    _assert_holds(ix, x, list(range(0, 300, 7)), gone=[5])
    assert len(ix) == 299
    notes = ix.stats()["recovery_notes"]
    assert any("snap-00000002" in n for n in notes)
    assert (root / "damaged-snap-00000002").is_dir()  # kept for inspection, not deleted
    ix.close()
    ix = Index.open(root)  # the recovered state was folded into a fresh snapshot
    assert len(ix) == 299 and not ix.stats()["recovery_notes"]
    ix.close()


def test_a_truncated_snapshot_file_is_reported_as_truncated(make_index, vectors, tmp_path):
    x = vectors(50)
    ix = make_index("flat")
    ix.upsert(*_items(x, 0, 50))
    ix.snapshot()
    ix.close()
    root = tmp_path / "ix"
    shutil.rmtree(root / "snap-00000000")
    vec = root / "snap-00000001" / "vectors.npy"
    with open(vec, "r+b") as f:
        f.truncate(os.path.getsize(vec) - 100)
    with pytest.raises(IndexCorruptError, match=r"vectors\.npy: truncated"):
        Index.open(root)


def test_damage_inside_an_acknowledged_log_record_raises_instead_of_losing_writes(make_index, vectors, tmp_path):
    x = vectors(50)
    ix = make_index("flat")
    for i in range(5):
        ix.upsert(*_items(x, i * 10, 10))
    ix.close()
    log = tmp_path / "ix" / "wal-00000000.log"
    with open(log, "r+b") as f:
        f.seek(40)
        f.write(b"\x00\x00\x00\x00")
    with pytest.raises(IndexCorruptError, match="wal-00000000.log: damaged record"):
        Index.open(tmp_path / "ix")


def test_a_missing_log_between_snapshot_and_newest_log_is_reported(make_index, vectors, tmp_path):
    x = vectors(50)
    ix = make_index("flat")
    ix.upsert(*_items(x, 0, 10))
    ix.snapshot()
    ix.upsert(*_items(x, 10, 10))
    ix.snapshot()
    ix.upsert(*_items(x, 20, 10))
    ix.close()
    root = tmp_path / "ix"
    shutil.rmtree(root / "snap-00000002")  # forces recovery from gen 1, which needs logs 1 and 2
    os.remove(root / "wal-00000001.log")
    with pytest.raises(IndexCorruptError):
        Index.open(root)


def test_a_leftover_temporary_snapshot_folder_is_ignored_and_cleaned(make_index, vectors, tmp_path):
    x = vectors(50)
    ix = make_index("flat")
    ix.upsert(*_items(x, 0, 10))
    ix.close()
    root = tmp_path / "ix"
    (root / "snap-00000001.tmp").mkdir()
    (root / "snap-00000001.tmp" / "vectors.npy").write_bytes(b"half written")
    ix = Index.open(root)
    assert len(ix) == 10
    ix.snapshot()
    assert not (root / "snap-00000001.tmp").exists()
    ix.close()


def test_opening_a_folder_without_snapshots_raises_corrupt_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexCorruptError, match="no snapshot"):
        Index.open(tmp_path / "empty")
