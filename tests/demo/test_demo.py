"""The README's main command: `omniembed demo` runs train -> export -> serve -> index -> queries for real."""

import json
import subprocess
import sys

import pytest

from omniembed.data.manifest import Item
from omniembed.demo.queries import QUERY_PAIRS, index_entries, run_queries, same_attributes, view_of
from omniembed.serve.client import Hit


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
    assert entries[0][2]["payload"] == {"item": "it0", "shape": "circle", "colour": "red"}
    assert view_of(_item(0, "red"), "image") is None and view_of(_item(0, "red"), "interleaved") is None


def test_a_hit_needs_the_whole_attribute_set():
    item = _item(0, "red")
    assert same_attributes({"shape": "circle", "colour": "red", "item": "x"}, item)
    assert not same_attributes({"shape": "circle", "colour": "blue"}, item)
    assert not same_attributes({"shape": "circle"}, item)


def test_run_queries_counts_hits_against_the_top_result():
    items = [_item(0, "red"), _item(1, "blue")]
    answers = {"a red circle": "red", "a blue circle": "red"}  # the second query is answered wrongly

    def search(query, modality):
        return [Hit("x", 0.5, {"payload": {"shape": "circle", "colour": answers[query]}})]

    results = run_queries(search, items, show=2)
    text_queries = [r for r in results if r.name == "video->text"]
    assert text_queries[0].queries == 0  # no item has a video view
    # only text->image has text queries; both are asked, one hits
    by_name = {r.name: r for r in results}
    assert by_name["text->image"].queries == 2 and by_name["text->image"].hits == 1
    assert "MATCH" in by_name["text->image"].examples[0] and "miss" in by_name["text->image"].examples[1]
