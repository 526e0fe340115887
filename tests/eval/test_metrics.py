"""Evaluation math on hand-made cases: recall@k and mAP with each hit rule, the matrix's skipped pairs, and
caption scoring."""

import numpy as np
import pytest

from omniembed.eval.hits import hit_key, resolve_rule
from omniembed.eval.matrix import matrix_from_embeddings
from omniembed.eval.metrics import mean_average_precision, ranked_hits, recall_at_k
from omniembed.train.evaluate import caption_rates, headline, names_value


def unit(rows):
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_recall_counts_a_hit_when_a_top_k_item_has_the_query_attribute_set():
    gallery = unit([[1, 0], [0, 1], [1, 1], [-1, 0]])
    keys_g = ["red circle", "blue square", "red circle", "green cross"]
    queries = unit([[1, 0.1],  # nearest: gallery 0 (red circle) -> hit at 1
                    [0, 1],  # nearest: gallery 1 (blue square) but the query is a green cross
                    [-1, 0.2]])  # nearest: gallery 3 (green cross) -> hit at 1
    keys_q = ["red circle", "green cross", "green cross"]
    r = recall_at_k(queries, gallery, keys_q, keys_g, ks=(1, 2, 4))
    # query 2's ranking: [1] blue square, [2] red circle, [0] red circle, [3] green cross: found only at k=4
    assert r == {1: pytest.approx(2 / 3), 2: pytest.approx(2 / 3), 4: pytest.approx(1.0)}


def test_a_duplicate_item_with_the_same_attributes_counts_as_a_hit():
    gallery = unit([[0, 1], [1, 0]])
    r = recall_at_k(unit([[1, 0]]), gallery, ["a"], ["b", "a"], ks=(1,))
    assert r[1] == 1.0
    r = recall_at_k(unit([[0, 1]]), gallery, ["a"], ["b", "a"], ks=(1,))
    assert r[1] == 0.0


def test_caption_words_map_to_one_attribute_value():
    from omniembed.data.synth.captions import COLOUR_WORDS, SHAPE_NOUNS

    assert names_value("a small crimson disc on the left", COLOUR_WORDS) == "red"
    assert names_value("a small crimson disc on the left", SHAPE_NOUNS) == "circle"
    assert names_value("a plus sign, large", SHAPE_NOUNS) == "cross"
    assert names_value("nothing to see", COLOUR_WORDS) is None
    assert names_value("red and blue", COLOUR_WORDS) is None  # two colours: not naming the item's one colour


def test_caption_rates_against_chance():
    rates = caption_rates(["a red circle", "a blue box", "green"],
                          [{"colour": "red", "shape": "circle"}, {"colour": "red", "shape": "square"},
                           {"colour": "green", "shape": "cross"}])
    assert rates["colour"] == pytest.approx(2 / 3) and rates["shape"] == pytest.approx(2 / 3)
    assert rates["colour_chance"] == pytest.approx(1 / 6) and rates["shape_chance"] == pytest.approx(1 / 4)


def test_caption_rates_count_only_the_attributes_an_item_has():
    # a caption naming no colour of an item without a colour is not a hit (None == None used to count)
    rates = caption_rates(["a thing", "a red box"], [{"shape": "square"}, {"colour": "red"}])
    assert rates["colour"] == 1.0 and rates["colour_n"] == 1 and rates["shape"] == 0.0 and rates["shape_n"] == 1
    assert caption_rates(["zero", "one"], [{"digit": 0}, {}]) is None  # nothing the vocabulary can judge


def test_mean_average_precision_averages_the_precision_at_each_hit():
    hits = np.array([[True, False, True, False],  # precision 1/1 and 2/3: AP 5/6
                     [False, True, False, False],  # 1/2
                     [False, False, False, False]])  # no hit: 0
    assert mean_average_precision(hits) == pytest.approx((5 / 6 + 1 / 2 + 0) / 3)
    # ranked by cosine to [1, 0]: gallery 1 (b, 1.0), gallery 2 (a, 0.995), gallery 0 (a, 0.0)
    h = ranked_hits(unit([[1, 0]]), unit([[0, 1], [1, 0], [1, 0.1]]), ["a"], ["a", "b", "a"])
    assert h.tolist() == [[False, True, True]]
    assert mean_average_precision(h) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_hit_rules_attributes_label_and_instance():
    a = {"digit": 3, "speaker": "x"}
    assert hit_key("attributes", "i1", a) == hit_key("attributes", "i2", {"speaker": "x", "digit": 3})
    assert hit_key("label", "i1", a, label="digit") == hit_key("label", "i9", {"digit": 3}, label="digit")
    assert hit_key("label", "i1", {"speaker": "x"}, label="digit") is None  # cannot be judged: takes no part
    assert hit_key("instance", "i1", a) != hit_key("instance", "i2", a)
    assert hit_key("instance", "i1", a, group="g") == hit_key("instance", "i2", {}, group="g")
    assert resolve_rule("auto", None, [{}, {}]) == "instance"
    assert resolve_rule("auto", None, [{}, {"k": 1}]) == "attributes"
    assert resolve_rule("auto", "digit", []) == "label"
    with pytest.raises(Exception, match="eval.label"):
        resolve_rule("label", None, [])


def test_a_pair_without_an_answerable_query_is_listed_as_skipped_not_scored():
    v = np.eye(3, dtype=np.float32)
    out = matrix_from_embeddings({"text": v, "audio": v}, {"text": ["a", "b", "c"], "audio": ["x", "y", "z"]},
                                 dims=(3,))
    assert out["dims"][3] == {} and len(out["skipped"]) == 2 and "text->audio" in out["skipped"][0]
    out = matrix_from_embeddings({"text": v, "audio": v}, {"text": ["a", "b", "c"], "audio": ["a", "b", "c"]},
                                 dims=(2, 3))
    assert out["dims"][3]["text->audio"][1] == 1.0 and out["map"][3]["text->audio"] == 1.0


def test_headline_reads_a_record_back_from_eval_jsonl_as_it_reads_a_live_one():
    import json

    live = {"recall": {"dims": {16: {"text->image": {1: 0.25, 5: 0.5}}, 128: {"text->image": {1: 0.75, 5: 1.0}}}}}
    line = headline(live)
    assert "R@1 dim 128: text->image=0.75" in line  # the full dim is the largest, not the last string
    assert headline(json.loads(json.dumps(live))) == line
