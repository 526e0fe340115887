"""The SQLite metadata store: payload round-trip, filters on modality and payload fields, bad filters."""

import numpy as np
import pytest

from omniembed.index.errors import IndexInputError
from omniembed.index.metadata import MetadataStore, clean_metadata

ROWS = [
    (0, "a", {"modality": "image", "uri": "a.png", "payload": {"colour": "red", "size": 3, "ok": True}}),
    (1, "b", {"modality": "audio", "uri": "b.wav", "payload": {"colour": "red", "size": 3.0, "ok": False}}),
    (2, "c", {"modality": "text", "uri": None, "payload": {"colour": "blue", "size": "3", "tag": None}}),
    (3, "d", {"modality": "image", "uri": "d.png", "payload": {"shape": {"kind": "circle"}, "size": 1}}),
]


@pytest.fixture
def store():
    s = MetadataStore()
    s.upsert(ROWS)
    yield s
    s.close()


def _ids(store, flt):
    rows = store.rows_for_slots(store.filter_slots(flt))
    return sorted(rows[s][0] for s in rows)


def test_rows_round_trip_with_their_payloads(store):
    rows = store.rows_for_slots([0, 3])
    assert rows[0] == ("a", ROWS[0][2]) and rows[3] == ("d", ROWS[3][2])


def test_modality_filter_takes_one_value_or_a_set(store):
    assert _ids(store, {"modality": "image"}) == ["a", "d"]
    assert _ids(store, {"modality": {"audio", "text"}}) == ["b", "c"]


def test_payload_equality_distinguishes_json_types(store):
    assert _ids(store, {"payload": {"size": 3}}) == ["a", "b"]  # 3 and 3.0 are the same JSON number
    assert _ids(store, {"payload": {"size": "3"}}) == ["c"]  # the string "3" is not the number 3
    assert _ids(store, {"payload": {"ok": True}}) == ["a"]
    assert _ids(store, {"payload": {"ok": False}}) == ["b"]
    assert _ids(store, {"payload": {"tag": None}}) == ["c"]


def test_filters_combine_with_and_and_lists_mean_any_of(store):
    assert _ids(store, {"modality": "image", "payload": {"colour": "red"}}) == ["a"]
    assert _ids(store, {"payload": {"colour": ["red", "blue"], "size": 3}}) == ["a", "b"]


def test_dotted_fields_reach_nested_payload_values(store):
    assert _ids(store, {"payload": {"shape.kind": "circle"}}) == ["d"]


def test_upsert_of_an_existing_id_returns_its_old_slot_and_moves_it(store):
    old = store.upsert([(9, "a", clean_metadata({"modality": "text"}, "t"))])
    assert old.tolist() == [0]
    assert store.slots_of(["a"]) == {"a": 9}
    assert _ids(store, {"modality": "image"}) == ["d"]


def test_delete_returns_the_slots_of_ids_that_existed(store):
    assert sorted(store.delete(["b", "zz", "c"]).tolist()) == [1, 2]
    assert store.count() == 2


def test_remap_renumbers_slots_densely(store):
    store.delete(["a", "c"])
    store.remap(np.array([1, 3]), np.array([0, 1]))
    assert store.slots_of(["b", "d"]) == {"b": 0, "d": 1}


def test_save_and_load_keep_every_row(store, tmp_path):
    store.save(str(tmp_path / "m.sqlite"))
    loaded = MetadataStore.load(str(tmp_path / "m.sqlite"))
    assert loaded.rows_for_slots([0, 1, 2, 3]) == store.rows_for_slots([0, 1, 2, 3])


@pytest.mark.parametrize(
    "flt, message",
    [
        ({"colour": "red"}, "unknown keys"),
        ({"modality": []}, "empty list"),
        ({"payload": {"a'); DROP TABLE items; --": 1}}, "dotted name"),
        ({"payload": {"colour": {"nested": 1}}}, "not a JSON scalar"),
        ({"modality": 3}, "must be strings"),
    ],
)
def test_malformed_filters_raise_input_errors_that_say_what_is_wrong(store, flt, message):
    with pytest.raises(IndexInputError, match=message):
        store.filter_slots(flt)


def test_metadata_with_unknown_keys_or_unserialisable_payload_is_rejected():
    with pytest.raises(IndexInputError, match="unknown metadata keys"):
        clean_metadata({"modality": "image", "colour": "red"}, "id 'x'")
    with pytest.raises(IndexInputError, match="not JSON-serialisable"):
        clean_metadata({"payload": {"v": object()}}, "id 'x'")
