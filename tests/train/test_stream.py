"""The training stream over a hand-made tokenized corpus: pairs, duplicate labels, caption loss masks,
resumable positions and rank shards."""

import numpy as np
import torch

from omniembed.corpus import Corpus, CorpusItem
from omniembed.runconfig import DataConfig, LoopConfig
from omniembed.stream import TrainStream

SPECIALS = {"bos": 1, "eos": 2, "embed": 4, "pad": 0}


def corpus(n=12):
    """Item i: image block [100+i]*3, audio block [200+i]*5, captions [[300+i], [300+i, 301]]; items come in
    duplicate pairs (group i // 2). One document, and one held-out item."""
    items = [CorpusItem(f"item-{i}", "train", f"g{i // 2}", {"k": str(i // 2)},
                        {"image": np.full(3, 100 + i), "audio": np.full(5, 200 + i)},
                        [np.array([300 + i]), np.array([300 + i, 301])]) for i in range(n)]
    items.append(CorpusItem("held", "heldout", "gh", {"k": "h"}, {"image": np.full(3, 99)}, [np.array([399])]))
    return Corpus(items, [np.arange(10, 30)], SPECIALS)


def stream(c, rank=0, world=1, **loop):
    cfg = LoopConfig(**{"pair_batch": 4, "lm_batch": 4, "pair_weights": {"text-image": 1.0, "image-audio": 1.0},
                        **loop})
    return TrainStream(c, cfg, DataConfig(max_view_tokens=16, lm_max_len=16), seed=3, rank=rank, world=world)


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
