"""The training stream over a hand-made tokenized corpus: pairs, duplicate labels, caption loss masks,
resumable positions and rank shards."""

import numpy as np
import torch

from omniembed.train.corpus import Corpus, CorpusItem
from omniembed.train.config import DataConfig, LoopConfig
from omniembed.train.batches import TrainStream

SPECIALS = {"bos": 1, "eos": 2, "embed": 4, "pad": 0}


def corpus(n=12):
    """Item i: image block [100+i]*3, audio block [200+i]*5, captions [[300+i], [300+i, 301]]; items come in
    duplicate pairs (group i // 2). One document, and one held-out item."""
    items = [CorpusItem(f"item-{i}", "train", f"g{i // 2}", {"k": str(i // 2)},
                        {"image": np.full(3, 100 + i), "audio": np.full(5, 200 + i)},
                        [np.array([300 + i]), np.array([300 + i, 301])]) for i in range(n)]
    items.append(CorpusItem("held", "heldout", "gh", {"k": "h"}, {"image": np.full(3, 99)}, [np.array([399])]))
    return Corpus(items, [np.arange(10, 30)], SPECIALS)


def stream(c, rank=0, world=1, label=None, **loop):
    cfg = LoopConfig(**{"pair_batch": 4, "lm_batch": 4, "pair_weights": {"text-image": 1.0, "image-audio": 1.0},
                        **loop})
    return TrainStream(c, cfg, DataConfig(max_view_tokens=16, lm_max_len=16), seed=3, rank=rank, world=world,
                       label=label)


def item_of(row):
    real = [t for t in row.tolist() if t >= 100]
    return real[0] % 100  # every content id encodes its item as the last two digits


def test_pair_rows_are_two_views_of_one_item_ending_in_embed_with_group_labels():
    c = corpus()
    s = stream(c)
    for step in range(1, 7):
        batch, name = s.pair_batch(step)
        assert name in ("text-image", "image-audio")
        for i in range(4):
            assert item_of(batch.a_ids[i]) == item_of(batch.b_ids[i])
            for ids, mask in ((batch.a_ids[i], batch.a_mask[i]), (batch.b_ids[i], batch.b_mask[i])):
                assert ids[mask][-1] == SPECIALS["embed"] and ids[mask][0] == SPECIALS["bos"]
        groups = [item_of(batch.a_ids[i]) // 2 for i in range(4)]
        for i in range(4):
            for j in range(4):
                assert (batch.labels[i] == batch.labels[j]) == (groups[i] == groups[j])
        assert all(item_of(batch.a_ids[i]) != 99 for i in range(4))  # held-out items never train


def test_caption_sequences_count_only_the_caption_in_the_loss():
    s = stream(corpus())
    seen_caption = False
    for step in range(1, 8):
        lm = s.lm_batch(step)
        for ids, mask, loss in zip(lm.ids, lm.pad_mask, lm.loss_mask):
            real, counted = ids[mask].tolist(), ids[loss].tolist()
            if real[1] == 10:  # the document: every token counts
                assert counted == real
                continue
            seen_caption = True
            assert all(t < 100 or t >= 300 for t in counted)  # no media code is a target
            assert counted[-1] == SPECIALS["eos"] and any(t >= 300 for t in counted)
    assert seen_caption


def test_a_restored_position_replays_the_same_batches():
    c = corpus()
    a = stream(c)
    straight = [a.pair_batch(k)[0].a_ids for k in range(1, 9)]
    b = stream(c)
    for k in range(1, 5):
        b.pair_batch(k)
    state = b.state_dict()
    resumed = stream(c)
    resumed.load_state_dict(state)
    for k in range(5, 9):
        assert torch.equal(resumed.pair_batch(k)[0].a_ids, straight[k - 1])


def test_two_ranks_split_each_global_batch_between_them():
    c = corpus()
    whole = stream(c)
    r0, r1 = stream(c, 0, 2), stream(c, 1, 2)
    for step in range(1, 5):
        full, name = whole.pair_batch(step)
        p0, n0 = r0.pair_batch(step)
        p1, n1 = r1.pair_batch(step)
        assert name == n0 == n1
        assert sorted(item_of(r) for r in full.a_ids) == sorted([item_of(r) for r in p0.a_ids] + [item_of(r) for r in p1.a_ids])


def attribute_corpus():
    """Items over attributes a in {0,1,2} x b in {0,1}, two items per combination (one duplicate group each);
    every item has a caption, an image and an audio block."""
    items, i = [], 0
    for a in range(3):
        for b in range(2):
            for _ in range(2):
                items.append(CorpusItem(f"item-{i}", "train", f"a{a}b{b}", {"a": str(a), "b": str(b)},
                                        {"image": np.full(3, 100 + i), "audio": np.full(5, 200 + i)},
                                        [np.array([300 + i])]))
                i += 1
    return Corpus(items, [np.arange(10, 30)], SPECIALS)


def test_near_misses_differ_from_the_item_in_exactly_one_attribute():
    from omniembed.train.batches import near_misses

    c = attribute_corpus()
    near = near_misses(c.items)
    for it, found in zip(c.items, near):
        expected = [k for k, other in enumerate(c.items)
                    if sum(other.attributes[n] != it.attributes[n] for n in ("a", "b")) == 1]
        assert found == expected and len(found) == 6  # 2 other a values + 1 other b value, 2 items each
    bare = [CorpusItem("x", "train", "x", {}, {}, []), CorpusItem("y", "train", "y", {}, {}, [])]
    assert near_misses(bare) == [[], []]  # no attributes: no near misses, the plain order is used


def test_under_a_label_rule_near_misses_differ_in_the_label_only_and_one_label_is_one_group():
    from omniembed.train.batches import near_misses

    c = attribute_corpus()
    near = near_misses(c.items, label="a")
    for it, found in zip(c.items, near):  # same b, another a: 2 other a values, 2 items each
        assert found == [k for k, o in enumerate(c.items) if o.attributes["b"] == it.attributes["b"]
                         and o.attributes["a"] != it.attributes["a"]] and len(found) == 4
    s = stream(c, pair_batch=6, pair_weights={"text-image": 1.0}, label="a")
    for step in range(1, 6):
        batch, _ = s.pair_batch(step)
        values = [c.items[item_of(r)].attributes["a"] for r in batch.a_ids]
        for i in range(6):  # rows of one a value share a label (not negatives), whatever their b
            for j in range(6):
                assert (batch.labels[i] == batch.labels[j]) == (values[i] == values[j])


def test_hard_negative_slots_hold_near_misses_of_the_drawn_items():
    c = attribute_corpus()
    s = stream(c, pair_batch=6, hard_negatives=0.5, pair_weights={"text-image": 1.0})
    for step in range(1, 6):
        batch, _ = s.pair_batch(step)
        rows = [c.items[item_of(r)] for r in batch.a_ids]
        drawn, hard = rows[:3], rows[3:]
        for h in hard:  # each filled slot is one attribute away from some drawn item
            assert any(sum(h.attributes[n] != d.attributes[n] for n in ("a", "b")) == 1 for d in drawn)


def test_a_multiview_batch_holds_every_view_of_the_same_items_with_weighted_pairs():
    from omniembed.train.trainer import ViewsBatch

    c = attribute_corpus()
    s = stream(c, multiview=1.0, multiview_views=["text", "image", "audio"],
               pair_weights={"text-image": 2.0, "image-audio": 1.0})
    batch, name = s.pair_batch(1)
    assert isinstance(batch, ViewsBatch) and name == "multiview"
    assert batch.pairs == [(0, 1, 2.0), (1, 2, 1.0)]  # text-audio has no weight: not a pair
    text, image, audio = (ids for ids, _ in batch.views)
    for i in range(4):
        assert item_of(text[i]) == item_of(image[i]) == item_of(audio[i])
    assert batch.tokens() == int(sum(m.sum() for _, m in batch.views))
    again, _ = stream(c, multiview=1.0, multiview_views=["text", "image", "audio"],
                      pair_weights={"text-image": 2.0, "image-audio": 1.0}).pair_batch(1)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(batch.views, again.views))  # seeded


def test_a_config_error_only_when_the_data_gives_no_positive_pair_at_all():
    import pytest

    from omniembed.errors import ConfigError

    with pytest.raises(ConfigError, match="multiview"):
        stream(corpus(), multiview=1.0, multiview_views=["text", "video"], pair_weights={"text-video": 1.0})
    # views the data lacks are left out: all-views batches over the views each item has
    s = stream(corpus(), multiview=1.0)  # the default multiview_views list video, which this corpus has not
    batch, name = s.pair_batch(1)
    assert name == "multiview" and len(batch.views) == 3 and batch.pairs == [(0, 1, 1.0), (1, 2, 1.0)]


def mixed_corpus():
    """Items of different view sets: 0-5 text+image, 6-11 image+audio, 12 text only (pairs nothing)."""
    def item(i, blocks, texts):
        return CorpusItem(f"item-{i}", "train", f"g{i}", {"k": str(i)}, blocks, texts)

    items = [item(i, {"image": np.full(3, 100 + i)}, [np.array([300 + i])]) for i in range(6)]
    items += [item(i, {"image": np.full(3, 100 + i), "audio": np.full(5, 200 + i)}, []) for i in range(6, 12)]
    items += [item(12, {}, [np.array([312])])]
    return Corpus(items, [], SPECIALS)


def test_mixed_view_sets_give_one_all_views_group_per_view_set_weighted_by_size():
    c = mixed_corpus()
    s = stream(c, multiview=1.0, pair_weights={"text-image": 1.0, "image-audio": 2.0, "text-audio": 1.0})
    assert [(name, views) for name, views, _ in s.view_groups] == [
        ("multiview:image+audio", ["image", "audio"]), ("multiview:text+image", ["text", "image"])]
    seen = set()
    for step in range(1, 30):
        batch, name = s.pair_batch(step)
        group_views = {g[0]: g[1] for g in s.view_groups}[name]
        assert len(batch.views) == len(group_views)
        for row in range(4):  # every row of a batch has every view of its group, from the same item
            assert len({item_of(ids[row]) for ids, _ in batch.views}) == 1
        assert all(item_of(ids[r]) != 12 for ids, _ in batch.views for r in range(4))
        seen.add(name)
    assert seen == {"multiview:image+audio", "multiview:text+image"}
    again = stream(c, multiview=1.0, pair_weights={"text-image": 1.0, "image-audio": 2.0, "text-audio": 1.0})
    again.load_state_dict(s.state_dict())  # every group's position is part of the checkpoint
