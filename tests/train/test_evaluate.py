"""Evaluation math on hand-made cases: recall@k with attribute-set hits, and caption scoring."""

import numpy as np
import pytest

from omniembed.train.evaluate import caption_rates, names_value, recall_at_k


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
