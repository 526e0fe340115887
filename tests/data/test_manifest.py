"""The JSONL manifest loader: accepts valid records of every shape, rejects each malformed one by name."""

import json
import shutil

import pytest

from omniembed.data.manifest import (
    Document,
    Item,
    Media,
    load_manifest,
    parse_record,
    record_to_json,
    write_manifest,
)
from omniembed.errors import ManifestError, MediaError
from omniembed.media import encode_audio, encode_image


@pytest.fixture
def media_dir(tmp_path):
    """A manifest folder with one real PNG and one real WAV under media/."""
    import numpy as np

    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.png").write_bytes(encode_image(np.full((8, 8, 3), 200, np.uint8)))
    (tmp_path / "media" / "a.wav").write_bytes(encode_audio(np.zeros(1600, np.float32), 16000))
    return tmp_path


def _write(folder, *lines) -> str:
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return str(path)


GOOD_ITEM = {"id": "a", "kind": "item", "views": {"text": ["a grey square"], "image": "media/a.png"}}


def test_generated_world_manifests_load_with_every_media_file_decoding(synth_world):
    records = load_manifest(synth_world.manifest_path)
    assert len(records) == len(synth_world.train)
    records = load_manifest(synth_world.heldout_path, check_media=True)  # the small split: decoding is slow
    assert {type(r) for r in records} == {Item, Document}
    assert all(r.views == ("text", "image", "audio", "video") for r in records if isinstance(r, Item))


def test_relative_paths_resolve_against_the_manifest_folder_and_absolute_paths_stay(media_dir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("other")
    manifest = _write(elsewhere, {"id": "x", "kind": "item", "views": {"audio": str(media_dir / "media" / "a.wav"),
                                                                       "text": "one caption as a plain string"}})
    (item,) = load_manifest(manifest, check_media=True)
    assert item.media["audio"].source == str(media_dir / "media" / "a.wav")
    assert item.texts == ("one caption as a plain string",)
    (item,) = load_manifest(_write(media_dir, GOOD_ITEM))
    assert item.media["image"].source == str(media_dir / "media" / "a.png")


def test_documents_keep_segment_order_and_blank_lines_are_skipped(media_dir):
    doc = {"id": "d", "kind": "document", "split": "train",
           "segments": [{"text": "look:"}, {"image": "media/a.png"}, {"text": "hear:"}, {"audio": "media/a.wav"}]}
    (record,) = load_manifest(_write(media_dir, "", doc, "   "), check_media=True)
    assert [s.modality for s in record.segments] == ["text", "image", "text", "audio"]
    assert record.segments[0].text == "look:" and record.split == "train"


def test_kind_may_be_left_out_when_views_or_segments_say_it(media_dir):
    item = {"id": "i", "views": {"text": "a cat", "image": "media/a.png"}}
    doc = {"id": "d", "segments": [{"text": "look:"}, {"image": "media/a.png"}]}
    record_item, record_doc = load_manifest(_write(media_dir, item, doc))
    assert record_item.media["image"].suffix == "png" and record_item.texts == ("a cat",)
    assert [s.modality for s in record_doc.segments] == ["text", "image"]


def test_http_urls_are_accepted_by_the_format_but_not_fetched(media_dir):
    item = {"id": "u", "kind": "item", "views": {"image": "https://example.org/cat.png"}}
    (record,) = load_manifest(_write(media_dir, item))
    assert record.media["image"].is_url and record.media["image"].suffix == "png"
    with pytest.raises(MediaError, match="not fetched"):
        record.media["image"].read_bytes()
    with pytest.raises(ManifestError, match=r"manifest.jsonl:1: field 'views.image'.*not fetched"):
        load_manifest(_write(media_dir, item), check_media=True)


BAD_CASES = [
    ("{not json", "invalid JSON"),
    ('["a", "list"]', "field '<record>': expected a JSON object"),
    ({"kind": "item", "views": {"text": "x"}}, "field 'id': required non-empty string"),
    ({"id": 7, "kind": "item", "views": {"text": "x"}}, "field 'id': required non-empty string, got int"),
    ({"id": "a", "kind": "picture", "views": {"text": "x"}}, "field 'kind': unknown kind"),
    ({"id": "a"}, "field 'kind': unknown kind null"),
    ({"id": "a", "views": {"text": "x"}, "segments": [{"text": "x"}]}, "field 'kind': unknown kind null"),
    ({"id": "a", "kind": "item"}, "field 'views': required object"),
    ({"id": "a", "kind": "item", "views": {}}, "field 'views': an item needs at least one view"),
    ({"id": "a", "kind": "item", "views": {"smell": "x.bin"}}, "field 'views.smell': unknown view"),
    ({"id": "a", "kind": "item", "views": {"text": ["ok", 3]}}, "field 'views.text[1]': expected a non-empty string"),
    ({"id": "a", "kind": "item", "views": {"text": []}}, "field 'views.text': expected a string or a non-empty list"),
    ({"id": "a", "kind": "item", "views": {"image": 5}}, "field 'views.image': expected a non-empty string path"),
    ({"id": "a", "kind": "item", "views": {"image": "media/missing.png"}}, "field 'views.image': media file not found"),
    ({"id": "a", "kind": "item", "views": {"image": "s3://bucket/a.png"}}, "unsupported URL scheme 's3'"),
    ({"id": "a", "kind": "item", "views": {"text": "x"}, "colour": "red"}, "field 'colour': unknown field"),
    ({"id": "a", "kind": "item", "views": {"text": "x"}, "attributes": ["red"]}, "field 'attributes': expected an object"),
    ({"id": "a", "kind": "item", "views": {"text": "x"}, "attributes": {"c": [1]}}, "field 'attributes.c'"),
    ({"id": "a", "kind": "item", "views": {"text": "x"}, "split": 1}, "field 'split': expected a non-empty string"),
    ({"id": "a", "kind": "item", "views": {"text": "x"}, "meta": "m"}, "field 'meta': expected an object"),
    ({"id": "d", "kind": "document", "segments": []}, "field 'segments': required non-empty list"),
    ({"id": "d", "kind": "document", "segments": [{"text": "a", "image": "media/a.png"}]},
     "field 'segments[0]': expected an object with exactly one key"),
    ({"id": "d", "kind": "document", "segments": [{"text": "a"}, {"smell": "x"}]}, "field 'segments[1].smell': unknown segment"),
    ({"id": "d", "kind": "document", "segments": [{"text": ""}]}, "field 'segments[0].text': expected a non-empty string"),
    ({"id": "d", "kind": "document", "segments": [{"audio": "media/none.wav"}]}, "field 'segments[0].audio': media file not found"),
    ({"id": "d", "kind": "document", "views": {"text": "x"}, "segments": [{"text": "x"}]}, "field 'views': unknown field"),
]


@pytest.mark.parametrize("line,message", BAD_CASES, ids=[m.split(":")[0][:40] for _, m in BAD_CASES])
def test_each_malformed_record_is_rejected_naming_file_line_and_field(media_dir, line, message):
    manifest = _write(media_dir, GOOD_ITEM, line)  # the bad record is on line 2
    with pytest.raises(ManifestError) as exc:
        load_manifest(manifest)
    assert str(exc.value).startswith(f"{manifest}:2: ")
    assert message in str(exc.value)


def test_duplicate_id_names_both_lines(media_dir):
    manifest = _write(media_dir, GOOD_ITEM, {**GOOD_ITEM, "id": "b"}, {**GOOD_ITEM, "views": {"text": "again"}})
    with pytest.raises(ManifestError, match=r":3: field 'id': duplicate id 'a' \(first on line 1\)"):
        load_manifest(manifest)


def test_check_media_wraps_a_corrupt_file_in_a_manifest_error_naming_the_field(media_dir):
    data = (media_dir / "media" / "a.png").read_bytes()
    (media_dir / "media" / "a.png").write_bytes(data[: len(data) // 2])  # truncated PNG
    manifest = _write(media_dir, GOOD_ITEM)
    assert load_manifest(manifest)  # structure alone is fine
    with pytest.raises(ManifestError, match=r":1: field 'views.image': media does not decode") as exc:
        load_manifest(manifest, check_media=True)
    assert isinstance(exc.value.__cause__, MediaError)


def test_check_media_rejects_a_file_of_the_wrong_modality(media_dir):
    manifest = _write(media_dir, {"id": "a", "kind": "item", "views": {"image": "media/a.wav"}})
    with pytest.raises(ManifestError, match="field 'views.image': media does not decode"):
        load_manifest(manifest, check_media=True)


def test_missing_manifest_file_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="cannot open manifest"):
        load_manifest(tmp_path / "nope.jsonl")


def test_write_manifest_round_trips_records_with_paths_relative_to_the_new_file(synth_world, tmp_path):
    records = load_manifest(synth_world.manifest_path)
    out = write_manifest(records, tmp_path / "copy" / "m.jsonl")
    first = json.loads(out.read_text().splitlines()[0])
    assert not first["views"]["image"].startswith("/")  # written relative, so the folder can move
    assert load_manifest(out) == records


def test_record_to_json_then_parse_record_is_identity(media_dir):
    (record,) = load_manifest(_write(media_dir, {**GOOD_ITEM, "attributes": {"n": 3}, "split": "x", "meta": {"k": 1}}))
    again = parse_record(record_to_json(record), base_dir="/")
    assert again == record


def test_a_moved_world_folder_still_loads(synth_world, tmp_path):
    moved = shutil.copytree(synth_world.root, tmp_path / "moved")
    records = load_manifest(moved / "heldout.jsonl")
    assert all(m.source.startswith(str(moved)) for r in records if isinstance(r, Item) for m in r.media.values())


def test_media_read_bytes_prefers_in_memory_data():
    assert Media("image", "/does/not/exist.png", data=b"abc").read_bytes() == b"abc"
    with pytest.raises(MediaError, match="cannot read file"):
        Media("image", "/does/not/exist.png").read_bytes()
