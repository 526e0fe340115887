"""bench/recall_matrix.py: the chance level, the per-dim prefixes, the pairs scored, and a tiny run end to end."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: bench/ is not installed

from bench.recall_matrix import (Views, answerable_rows, chance_recall, collect_views, compute,  # noqa: E402
                                 matrix_from_embeddings, write_results)


def test_chance_recall_is_the_exact_probability_a_random_ranking_hits():
    gallery = ["a", "b", "c", "d"]
    assert chance_recall(["a"], gallery, 1) == pytest.approx(1 / 4)
    assert chance_recall(["a"], gallery, 2) == pytest.approx(1 / 2)
    # two matching rows among four: 1 - (2/4)(1/3) for k = 2
    assert chance_recall(["a"], ["a", "a", "c", "d"], 2) == pytest.approx(1 - (2 / 4) * (1 / 3))
    assert chance_recall(["z"], gallery, 10) == 0.0


def test_answerable_rows_drops_queries_whose_key_is_absent_from_the_gallery():
    assert answerable_rows(["a", "b", "c"], ["c", "a"]) == [0, 2]


def _views(keys):
    return Views(inputs=list(keys), keys=list(keys), ids=list(keys))


def test_each_dim_scores_the_renormalised_prefix_not_the_full_vector():
    # the first two dims carry nothing (all rows equal), the rest identify the item: dim 2 is at chance,
    # dim 8 is perfect
    n = 6
    rng = np.random.default_rng(0)
    ident = np.eye(n, 6, dtype=np.float32)
    q = np.concatenate([np.ones((n, 2), np.float32), ident], axis=1)
    g = q[rng.permutation(n)]
    keys = [f"k{i}" for i in range(n)]
    gkeys = [keys[int(np.argmax(row[2:]))] for row in g]
    out = matrix_from_embeddings({"text": q, "image": g},
                                 {"text": _views(keys), "image": _views(gkeys)}, dims=(2, 8))
    assert out["dims"][8]["text->image"][1] == 1.0
    assert out["dims"][8]["image->text"][1] == 1.0
    # all prefix vectors tie at dim 2, so the ranking is the gallery order: one query in six is right
    assert out["dims"][2]["text->image"][1] == pytest.approx(1 / n)
    assert out["chance"]["text->image"][1] == pytest.approx(1 / n)
    assert "text->text" not in out["dims"][8]


def test_a_pair_scores_only_queries_with_a_target_and_counts_them():
    v = np.eye(3, dtype=np.float32)
    out = matrix_from_embeddings({"text": v, "interleaved": v[:1]},
                                 {"text": _views(["a", "b", "c"]), "interleaved": _views(["a"])}, dims=(3,))
    assert out["queries"] == {"text->interleaved": 1, "interleaved->text": 1}
    assert out["dims"][3]["text->interleaved"][1] == 1.0


def test_collect_views_gives_every_modality_and_single_item_documents_as_interleaved(synth_world):
    views = collect_views(synth_world.heldout)
    assert set(views) == {"text", "image", "audio", "video", "interleaved"}
    n_items = len([r for r in synth_world.heldout if r.kind == "item"])
    assert all(len(views[m].inputs) == n_items for m in ("text", "image", "audio", "video"))
    doc = views["interleaved"].inputs[0]
    assert any(isinstance(s, str) for s in doc) and any(isinstance(s, Path) and s.is_file() for s in doc)
    assert set(views["interleaved"].keys) <= set(views["text"].keys)  # documents are about held-out items


def test_recall_matrix_of_tiny_run_matches_the_training_evaluation_and_writes_md_and_png(tiny_run, tmp_path):
    ours = compute(tiny_run)
    write_results(ours, tmp_path, f"python -m bench.recall_matrix {tiny_run}")
    md = (tmp_path / "recall_matrix.md").read_text()
    for needle in ("- command: `python -m bench.recall_matrix", "- machine: ", "- date: ", "## dim 16",
                   "## dim 64", "attribute set equals the query's exactly", "| **interleaved** |"):
        assert needle in md
    with Image.open(tmp_path / "recall_matrix.png") as im:
        assert im.width > 2 * im.height  # one panel per dim, side by side

    # the same numbers as omniembed.evaluate computed from the tokenized corpus at the end of training:
    # files -> Embedder -> recall_at_k agrees with corpus -> model -> recall_at_k
    last = [json.loads(line) for line in (tiny_run / "eval.jsonl").read_text().splitlines()][-1]
    for d, table in last["recall"]["dims"].items():
        for pair, rec in table.items():
            assert ours["dims"][int(d)][pair] == pytest.approx({int(k): v for k, v in rec.items()}), (d, pair)
