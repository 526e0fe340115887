"""WebDataset shards: records and their media bytes survive a write/read round trip."""

import hashlib
import io
import json
import tarfile

import pytest

from omniembed.data.manifest import Document, Item, load_manifest
from omniembed.data.shards import read_shards, shard_manifest, write_shards
from omniembed.errors import ManifestError


def _strip_media(record):
    """A record's JSON without media locations, to compare records read from different places."""
    from omniembed.data.manifest import record_to_json, media_of

    return record_to_json(record, media_names={name: "" for name, _ in media_of(record)})


@pytest.fixture(scope="module")
def sharded(synth_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    records = load_manifest(synth_world.heldout_path) + load_manifest(synth_world.manifest_path)[:10]
    paths = write_shards(records, out / "part-%04d.tar", maxcount=4)
    return records, paths


def test_round_trip_keeps_every_record_and_every_media_byte(sharded):
    records, paths = sharded
    back = list(read_shards(paths))
    assert [_strip_media(r) for r in back] == [_strip_media(r) for r in records]
    for original, copy in zip(records, back):
        from omniembed.data.manifest import media_of

        pairs = list(zip(media_of(original), media_of(copy)))
        assert pairs, original.id
        for (name, a), (name_b, b) in pairs:
            assert name == name_b and b.data is not None
            assert b.data == a.read_bytes(), (original.id, name)
            assert b.read_bytes() == b.data  # in memory: no file is touched


def test_maxcount_splits_records_across_shards_in_order(sharded):
    records, paths = sharded
    assert len(paths) == -(-len(records) // 4)
    assert [p.name for p in paths] == [f"part-{i:04d}.tar" for i in range(len(paths))]
    with tarfile.open(paths[0]) as tar:
        names = tar.getnames()
    assert names[:2] == ["000000000.audio.wav", "000000000.image.png"]
    assert "000000000.record.json" in names


def test_brace_patterns_and_lists_read_the_same_records(sharded):
    records, paths = sharded
    pattern = f"{paths[0].parent}/part-{{0000..{len(paths) - 1:04d}}}.tar"
    assert [r.id for r in read_shards(pattern)] == [r.id for r in records]
    assert [r.id for r in read_shards([str(p) for p in paths[1:]])] == [r.id for r in records[4:]]


def test_records_read_from_shards_feed_the_decoders(sharded):
    from omniembed.media import decode_image

    docs = [r for r in read_shards(sharded[1]) if isinstance(r, Document)]
    image = next(s.media for doc in docs for s in doc.segments if s.modality == "image")
    assert image.source.endswith(".png") and "#" in image.source
    assert decode_image(image.data).shape == (64, 64, 3)


def test_writing_the_same_records_twice_gives_identical_shards(sharded, tmp_path):
    records, paths = sharded
    again = write_shards(records, tmp_path / "part-%04d.tar", maxcount=4)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert [digest(p) for p in again] == [digest(p) for p in paths]


def test_shard_manifest_writes_a_whole_manifest(synth_world, tmp_path):
    paths = shard_manifest(synth_world.heldout_path, tmp_path / "h-%03d.tar", maxcount=100)
    assert len(paths) == 1
    assert len(list(read_shards(paths))) == len(synth_world.heldout)


def test_text_only_items_need_no_media_members(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "t.1", "kind": "item", "views": {"text": ["hello"]}}) + "\n")
    paths = shard_manifest(tmp_path / "m.jsonl", tmp_path / "s-%d.tar")
    (record,) = read_shards(paths)
    assert isinstance(record, Item) and record.id == "t.1" and record.texts == ("hello",) and not record.media


def _tar_with(path, members: dict[str, bytes]):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_sample_without_record_json_is_a_manifest_error(tmp_path):
    _tar_with(tmp_path / "x.tar", {"000000000.image.png": b"\x89PNG"})
    with pytest.raises(ManifestError, match="no 'record.json' member"):
        list(read_shards(tmp_path / "x.tar"))


def test_record_pointing_at_a_missing_member_is_a_manifest_error(tmp_path):
    record = {"id": "a", "kind": "item", "views": {"image": "image.png"}}
    _tar_with(tmp_path / "x.tar", {"000000000.record.json": json.dumps(record).encode()})
    with pytest.raises(ManifestError, match="field 'views.image': member 'image.png' missing"):
        list(read_shards(tmp_path / "x.tar"))


def test_invalid_record_inside_a_shard_is_rejected_like_a_manifest_line(tmp_path):
    _tar_with(tmp_path / "x.tar", {"000000000.record.json": b'{"id": "a", "kind": "blob"}'})
    with pytest.raises(ManifestError, match="x.tar#000000000.*field 'kind': unknown kind"):
        list(read_shards(tmp_path / "x.tar"))


def test_pattern_without_a_shard_number_is_refused(tmp_path):
    with pytest.raises(ValueError, match="integer placeholder"):
        write_shards([], tmp_path / "one.tar")
