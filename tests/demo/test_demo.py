"""The README's main command: `omniembed demo` runs train -> export -> serve -> index -> queries for real."""

import json
import subprocess
import sys

import pytest

from omniembed.data.manifest import Item
from omniembed.demo.queries import QUERY_PAIRS, index_entries, item_key, payload_key, plan, run_queries, view_of
from omniembed.hits import Hit


@pytest.mark.slow
def test_demo_runs_every_stage_through_a_real_server(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "omniembed.cli", "demo", "--config", "tiny", "--out", str(out),
           "--show", "1"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for stage in ("1. train", "2. export", "3. serve", "4. index", "5. queries"):
        assert f"== {stage}" in run.stdout, f"stage {stage!r} not printed"
    assert "server stopped (exit 0)" in run.stdout
    recalls = json.loads((out / "queries.json").read_text())
    assert set(recalls) == {name for name, _, _ in QUERY_PAIRS}
    assert all(0.0 <= r <= 1.0 for r in recalls.values())
    assert {"train", "export", "serve", "index", "queries", "total"} <= set(
        json.loads((out / "timings.json").read_text()))
    # the index the server persisted on shutdown holds every view of every held-out item
    from omniembed.index import Index

    from omniembed.data.manifest import load_manifest

    heldout = [r for r in load_manifest(out / "run" / "world" / "heldout.jsonl") if isinstance(r, Item)]
    ix = Index.open(out / "index")
    try:
        assert len(ix) == 4 * len(heldout)
    finally:
        ix.close()


def _item(i: int, colour: str) -> Item:
    return Item(id=f"it{i}", texts=(f"a {colour} circle",), attributes={"shape": "circle", "colour": colour})


def test_index_entries_store_each_view_with_its_modality_and_attributes():
    entries = index_entries([_item(0, "red")])
    assert [(e[0], e[2]["modality"]) for e in entries] == [("it0/text", "text")]
    assert entries[0][2]["payload"] == {"item": "it0", "group": "it0",
                                        "attributes": {"shape": "circle", "colour": "red"}}
    assert view_of(_item(0, "red"), "image") is None and view_of(_item(0, "red"), "interleaved") is None


def test_a_hit_needs_the_whole_attribute_set_or_the_rule_the_run_names():
    item = _item(0, "red")
    want = item_key(item, "attributes", None)
    assert payload_key({"item": "x", "attributes": {"shape": "circle", "colour": "red"}}, "attributes", None) == want
    assert payload_key({"item": "x", "attributes": {"shape": "circle", "colour": "blue"}}, "attributes", None) != want
    assert payload_key({"item": "x", "attributes": {"shape": "circle"}}, "attributes", None) != want
    # instance retrieval: the item itself; a label: that attribute alone
    assert payload_key({"item": "it0", "group": "it0"}, "instance", None) == item_key(item, "instance", None)
    assert payload_key({"item": "x", "attributes": {"colour": "red"}}, "label", "colour") == \
        item_key(item, "label", "colour")


def test_run_queries_counts_hits_against_the_top_result():
    items = [_item(0, "red"), _item(1, "blue")]
    answers = {"a red circle": "red", "a blue circle": "red"}  # the second query is answered wrongly

    def search(query, modality):
        return [Hit("x", 0.5, {"payload": {"item": "x", "attributes": {"shape": "circle", "colour": answers[query]}}})]

    results = run_queries(search, items, show=2, pairs=list(QUERY_PAIRS))
    text_queries = [r for r in results if r.name == "video->text"]
    assert text_queries[0].queries == 0  # no item has a video view
    # only text->image has text queries; both are asked, one hits
    by_name = {r.name: r for r in results}
    assert by_name["text->image"].queries == 2 and by_name["text->image"].hits == 1
    assert "MATCH" in by_name["text->image"].examples[0] and "miss" in by_name["text->image"].examples[1]


def test_queries_are_planned_among_the_modalities_the_heldout_set_has():
    from omniembed.data.manifest import Media

    items = [Item(id=f"i{i}", texts=("a sound",), media={"audio": Media("audio", f"/x/{i}.wav")}) for i in range(2)]
    pairs, skipped = plan(items)
    assert [p[0] for p in pairs] == ["text->audio", "audio->text"]
    assert len(skipped) == len(QUERY_PAIRS) and any("no image" in s for s in skipped)


def test_a_search_that_returns_nothing_is_a_miss_not_a_crash():
    results = run_queries(lambda query, modality: [], [_item(0, "red")], show=1,
                          pairs=[("text->text", "text", "text")])
    assert results[0].queries == 1 and results[0].hits == 0 and results[0].recall == 0.0
    assert "-> -" in results[0].examples[0]
