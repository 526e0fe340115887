"""The attribute vocabulary and the train / held-out split of combinations."""

import pytest

from omniembed.data.synth import world as W


def test_combination_count_is_in_the_hundreds():
    assert 100 <= len(W.all_combinations()) < 1000
    assert len(set(W.all_combinations())) == len(W.all_combinations())


def test_split_is_deterministic_per_seed_and_differs_across_seeds():
    assert W.split_combinations(3) == W.split_combinations(3)
    assert set(W.split_combinations(3).heldout) != set(W.split_combinations(4).heldout)


def test_heldout_combinations_are_disjoint_from_train_and_cover_the_requested_fraction():
    split = W.split_combinations(0, heldout_frac=0.125)
    assert not set(split.train) & set(split.heldout)
    assert set(split.train) | set(split.heldout) == set(W.all_combinations())
    assert len(split.heldout) == round(0.125 * len(W.all_combinations()))


@pytest.mark.parametrize("frac", [0.125, 0.5, 0.95])
def test_every_attribute_value_stays_in_training_even_when_most_combinations_are_held_out(frac):
    split = W.split_combinations(1, heldout_frac=frac)
    for i, (name, values) in enumerate(W.ATTRIBUTES.items()):
        assert {c[i] for c in split.train} == set(values), name


def test_first_training_combinations_already_cover_every_value():
    # a world of only 6 training items must still show all 6 colours, 4 shapes, ...
    head = W.split_combinations(2).train[: max(len(v) for v in W.ATTRIBUTES.values())]
    for i, values in enumerate(W.ATTRIBUTES.values()):
        assert {c[i] for c in head} == set(values)


def test_assign_items_cycles_through_every_combination_before_repeating():
    split = W.split_combinations(0)
    train, heldout = W.assign_items(split, len(split.train) + 5, 3)
    assert len(set(train[: len(split.train)])) == len(split.train)
    assert train[len(split.train):] == list(split.train[:5])
    assert set(heldout) <= set(split.heldout)


def test_heldout_items_without_heldout_combinations_is_an_error():
    with pytest.raises(ValueError, match="no combination is held out"):
        W.assign_items(W.split_combinations(0, heldout_frac=0.0), 4, 1)


def test_out_of_range_heldout_fraction_is_rejected():
    with pytest.raises(ValueError, match="heldout_frac"):
        W.split_combinations(0, heldout_frac=1.0)


def test_colour_notes_are_five_semitones_apart_and_hues_sixty_degrees():
    import math

    notes = sorted(W.NOTES.values())
    gaps = [12 * math.log2(b / a) for a, b in zip(notes, notes[1:])]
    assert min(gaps) == pytest.approx(5.0)
    hues = sorted(W.HUES.values())
    assert [b - a for a, b in zip(hues, hues[1:])] == [60.0] * 5
