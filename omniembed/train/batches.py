"""The mixed training stream over a tokenized Corpus: contrastive pair batches and next-token batches.

Each step draws one modality pair (by `loop.pair_weights`) and a global batch of items that have both
views; rows whose items share a duplicate group get the same label, so they are not negatives of each
other. LM batches mix interleaved documents with caption sequences ("<image> codes caption").

Determinism: random choices of step s come from a generator seeded with (seed, s), and which items come
next is the position of seeded samplers (omniembed.train.sampler), saved in the checkpoint: a resumed run reads
the same batches as an uninterrupted one. Every rank computes the global batch and keeps its share.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import torch

from omniembed.train.corpus import Corpus, CorpusItem, training_group
from omniembed.errors import ConfigError
from omniembed.tokenization.padding import pad_right
from omniembed.train.config import DataConfig, LoopConfig
from omniembed.train.sampler import ResumableSampler
from omniembed.train.trainer import PairBatch, TokenBatch, ViewsBatch

log = logging.getLogger("omniembed.train")
CAPTIONED_VIEWS = ("image", "audio", "video")
MULTIVIEW = "multiview"  # the sampler / batch name of the all-views steps


def pad_batch(seqs: list[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest: ids (B, T) long and pad_mask (B, T) bool, True on real tokens."""
    ids, mask = pad_right(seqs, pad_id)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def _view_pairs(views: list[str], weights: dict[frozenset, float]) -> list[tuple[int, int, float]]:
    """(k, l, weight) for every pair of views with a positive weight."""
    return [(k, l, weights[frozenset((views[k], views[l]))]) for k, l in itertools.combinations(range(len(views)), 2)
            if weights.get(frozenset((views[k], views[l])), 0) > 0]


def _view_counts(corpus: Corpus, indices: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in indices:
        for v in corpus.items[i].views():
            counts[v] = counts.get(v, 0) + 1
    return counts


def near_misses(items: list[CorpusItem], label: str | None = None) -> list[list[int]]:
    """For each item, the positions of items whose attribute set differs from its own in exactly one value
    (same attribute names): the negatives a retrieval of exact attribute sets most often confuses. With a
    `label` (the hit rule `eval.label`), only items whose one differing value is the label: the rest share
    the label, so they are hits, not negatives."""
    keys = [tuple(sorted(it.attributes.items())) if it.attributes else None for it in items]
    if label is not None:
        keys = [k if k is not None and label in dict(k) else None for k in keys]
    by_set: dict[tuple, list[int]] = {}
    for k, key in enumerate(keys):
        if key is not None:
            by_set.setdefault(key, []).append(k)

    def near(key: tuple, own: tuple) -> bool:
        differ = [a[0] for a, b in zip(key, own) if a != b]
        return len(key) == len(own) and len(differ) == 1 and (label is None or differ[0] == label)

    # compared set against set, not item against set: items repeat their attribute sets
    neighbours = {own: sorted(k for key, members in by_set.items() if near(key, own) for k in members)
                  for own in by_set}
    return [neighbours[key] if key is not None else [] for key in keys]


def view_rows(corpus: Corpus, items: list[CorpusItem], views: list[str], draws, data: DataConfig):
    """One padded (ids, mask) per view over `items` (rows in item order). Each item's views share one draw,
    which picks its caption and the window of its long media (a step reads one window of each). An item
    without a view (or a None item: a row for a record that is not an item) gets the bare <bos> <eos> <embed>
    there, a masked row (see MaskedViewsBatch)."""
    pad, mx, s = corpus.specials["pad"], data.max_view_tokens, corpus.specials
    bare = np.asarray([s["bos"], s["eos"], s["embed"]], dtype=np.int64)
    return [pad_batch([corpus.view_ids(it, v, int(c), mx, window=int(c)) if it is not None and v in it.views()
                       else bare
                       for it, c in zip(items, draws)], pad) for v in views]


def lm_rows(corpus: Corpus, units: list[tuple[str, object]], draws, data: DataConfig) -> TokenBatch:
    """The next-token batch of units ("doc", body ids) or ("cap", item): a caption sequence of one of the
    item's media (by the unit's two draws); data.caption_loss says whether only the caption is counted."""
    seqs, starts = [], []  # starts: first token the loss counts (0: all of it)
    for (kind, unit), (c_view, c_text) in zip(units, draws):
        if kind == "doc":
            seqs.append(corpus.body_sequence(unit, data.lm_max_len))
            starts.append(0)
            continue
        views = [v for v in CAPTIONED_VIEWS if v in unit.blocks]
        seq, prompt = corpus.caption_sequence(unit, views[int(c_view) % len(views)], int(c_text), data.lm_max_len)
        seqs.append(seq)
        starts.append(prompt if data.caption_loss == "text" else 0)
    ids, mask = pad_batch(seqs, corpus.specials["pad"])
    loss_mask = mask & (torch.arange(ids.shape[1])[None, :] >= torch.tensor(starts)[:, None])  # (B, T)
    return TokenBatch(ids, mask, loss_mask)


def captionable(item: CorpusItem) -> bool:
    return bool(item.texts) and any(v in item.blocks for v in CAPTIONED_VIEWS)


class TrainStream:
    def __init__(self, corpus: Corpus, loop: LoopConfig, data: DataConfig, seed: int, rank: int = 0,
                 world: int = 1, label: str | None = None):
        """label: the attribute of a label hit rule (eval.label); items sharing its value are not negatives."""
        self.corpus, self.loop, self.data, self.seed = corpus, loop, data, seed
        self.rank, self.world = rank, world
        train = corpus.split("train")
        self.item_group = {i: training_group(corpus.items[i].group, corpus.items[i].attributes, label) for i in train}
        self.group_index = {g: k for k, g in enumerate(sorted(set(self.item_group.values())))}
        self.pairs: list[str] = []
        self.weights: list[float] = []
        self.samplers: dict[str, ResumableSampler] = {}
        self.members: dict[str, list[int]] = {}
        for k, (name, w) in enumerate(sorted(loop.pair_weights.items())):
            a, b = name.split("-")
            members = [i for i in train if {a, b} <= set(corpus.items[i].views())]
            if w <= 0 or len(members) < 2:
                continue
            self.pairs.append(name)
            self.weights.append(w)
            self.members[name] = members
            self.samplers[name] = ResumableSampler(len(members), seed=seed * 1000 + k)
        self.view_groups: list = []
        if loop.multiview > 0:
            self._setup_multiview(train)
        self.near_misses = {name: near_misses([corpus.items[i] for i in members], label)
                            for name, members in self.members.items()} if loop.hard_negatives > 0 else {}
        if not self.pairs and not self.view_groups:
            raise ConfigError(f"no two training items share both views of any pair in loop.pair_weights "
                              f"{sorted(loop.pair_weights)}, for pair batches or loop.multiview's all-views "
                              f"batches (views found: {_view_counts(corpus, train)}): nothing to train the "
                              "contrastive head on")
        for n, b in (("pair_batch", loop.pair_batch), ("lm_batch", loop.lm_batch)):
            if b % world:
                raise ConfigError(f"loop.{n}={b} does not split evenly over {world} processes")
        # LM units: ("doc", index) or ("cap", item index) for items with captions and a media block
        self.lm_units = [("doc", j) for j in range(len(corpus.documents))]
        if data.caption_sequences:
            self.lm_units += [("cap", i) for i in train if captionable(corpus.items[i])]
        self.lm_sampler = ResumableSampler(len(self.lm_units), seed=seed * 1000 + 999) if self.lm_units else None

    def _setup_multiview(self, train: list[int]) -> None:
        """All-views batches over the items' own view sets: items are grouped by which of multiview_views they
        have, and a group trains every weighted pair among its views. A world where every item has every view
        is one group, named MULTIVIEW."""
        wanted = list(dict.fromkeys(self.loop.multiview_views))
        weights = {frozenset(k.split("-")): w for k, w in self.loop.pair_weights.items()}
        by_views: dict[tuple[str, ...], list[int]] = {}
        for i in train:
            have = set(self.corpus.items[i].views())
            by_views.setdefault(tuple(v for v in wanted if v in have), []).append(i)
        self.view_groups: list[tuple[str, list[str], list[tuple[int, int, float]]]] = []
        formable = [(views, members) for views, members in by_views.items() if len(members) >= 2
                    and _view_pairs(list(views), weights)]
        skipped = sum(len(m) for v, m in by_views.items() if (v, m) not in formable)
        for g, (views, members) in enumerate(sorted(formable, key=lambda group: (-len(group[0]), group[0]))):
            name = MULTIVIEW if len(formable) == 1 else f"{MULTIVIEW}:{'+'.join(views)}"
            self.view_groups.append((name, list(views), _view_pairs(list(views), weights)))
            self.members[name] = members
            self.samplers[name] = ResumableSampler(len(members), seed=self.seed * 1000 + 998 - g)
        if not self.view_groups:
            log.warning("loop.multiview=%s: no two training items share two or more of %s with a positive "
                        "pair weight between them: every step trains one pair of views", self.loop.multiview, wanted)
        elif skipped:
            log.info("all-views batches: %d groups of items by view set; %d items in view sets of one item or "
                     "one view take part in pair batches only", len(self.view_groups), skipped)

    def _rng(self, step: int, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step, salt])

    def pair_batch(self, step: int) -> tuple[PairBatch | ViewsBatch, str]:
        rng = self._rng(step, 0)
        if self.view_groups and rng.random() < self.loop.multiview:
            group = 0
            if len(self.view_groups) > 1:  # a group in proportion to its items
                sizes = np.asarray([len(self.members[g[0]]) for g in self.view_groups], dtype=np.float64)
                group = int(rng.choice(len(sizes), p=sizes / sizes.sum()))
            name, views, pairs = self.view_groups[group]
            batches, labels = self._view_batches(name, views, rng)
            return ViewsBatch(batches, pairs, labels), name
        p = np.asarray(self.weights) / sum(self.weights)
        name = self.pairs[int(rng.choice(len(self.pairs), p=p))]
        ((a_ids, a_mask), (b_ids, b_mask)), labels = self._view_batches(name, name.split("-"), rng)
        return PairBatch(a_ids, a_mask, b_ids, b_mask, labels), name

    def _view_batches(self, name: str, views: list[str], rng: np.random.Generator):
        """This rank's rows of the next global batch of `name`'s members: one padded (ids, mask) per view
        (each item's views share one caption choice) and the duplicate-group labels."""
        picks = self._picks(name, rng)
        captions = rng.integers(0, 1 << 30, size=self.loop.pair_batch)[self.rank::self.world]
        rows = [self.members[name][k] for k in picks]
        batches = view_rows(self.corpus, [self.corpus.items[i] for i in rows], views, captions, self.data)
        labels = torch.tensor([self.group_index[self.item_group[i]] for i in rows], dtype=torch.long)
        return batches, labels

    def _picks(self, name: str, rng: np.random.Generator) -> list[int]:
        """This rank's member positions for the next global batch: the sampler's order, where
        `loop.hard_negatives` of the slots are given to near misses of items already drawn."""
        B = self.loop.pair_batch
        n_hard = int(round(self.loop.hard_negatives * B))
        near = self.near_misses.get(name)
        if not n_hard or not near or not any(near):
            return self.samplers[name].take_shard(B, self.rank, self.world)
        picks = self.samplers[name].take(B - n_hard)
        sources = [k for k in picks if near[k]]
        for j in range(n_hard):
            if not sources:  # no drawn item has a near miss: fill from the plain order
                picks += self.samplers[name].take(n_hard - j)
                break
            options = near[sources[j % len(sources)]]
            picks.append(options[int(rng.integers(len(options)))])
        return picks[self.rank::self.world]

    def lm_batch(self, step: int) -> TokenBatch | None:
        if self.lm_sampler is None or not self.loop.lm_every or step % self.loop.lm_every:
            return None
        rng = self._rng(step, 1)
        choice = rng.integers(0, 1 << 30, size=(self.loop.lm_batch, 2))[self.rank::self.world]
        units = []
        for k in self.lm_sampler.take_shard(self.loop.lm_batch, self.rank, self.world):
            kind, idx = self.lm_units[k]
            units.append(("doc", self.corpus.documents[idx]) if kind == "doc" else ("cap", self.corpus.items[idx]))
        return lm_rows(self.corpus, units, choice, self.data)

    def next_batches(self, step: int):
        """(contrastive batch, LM batch or None, the batch's name) of step `step` (a micro-batch index under
        gradient accumulation)."""
        pairs, name = self.pair_batch(step)
        return pairs, self.lm_batch(step), name

    def state_dict(self) -> dict:
        return {"pairs": {k: s.state_dict() for k, s in self.samplers.items()},
                "lm": None if self.lm_sampler is None else self.lm_sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if sorted(state["pairs"]) != sorted(self.samplers):
            raise ConfigError(f"checkpoint data position covers pairs {sorted(state['pairs'])}, this run trains "
                              f"{sorted(self.samplers)}: resume with the same loop.pair_weights")
        for k, s in state["pairs"].items():
            self.samplers[k].load_state_dict(s)
        if self.lm_sampler is not None and state["lm"] is not None:
            self.lm_sampler.load_state_dict(state["lm"])


class StreamBatches:
    """Batches from a streamed corpus (omniembed.train.streaming), one code path with TrainStream's rows.

    Each step takes this rank's share (pair_batch / world) of the next records in stream order, so every
    record of an epoch is used exactly once: its item's views are rows of one all-views contrastive batch
    (MaskedViewsBatch: every weighted pair among the views present, each over the rows that have both), and
    its document, or a caption sequence of a captioned item (up to lm_batch / world per step), rows of the
    next-token batch. Pair sampling weights, loop.multiview and hard negatives are for the in-memory corpus;
    here pair_weights weigh the pairs' losses. Random draws (caption, window) come from (seed, step)."""

    def __init__(self, reader, specials: dict, loop: LoopConfig, data: DataConfig, seed: int, rank: int = 0,
                 world: int = 1, trace=None):
        from omniembed.train.corpus import Corpus

        for n, b in (("pair_batch", loop.pair_batch), ("lm_batch", loop.lm_batch)):
            if b % world:
                raise ConfigError(f"loop.{n}={b} does not split evenly over {world} processes")
        self.reader, self.loop, self.data, self.seed = reader, loop, data, seed
        self.rank, self.world = rank, world
        self.corpus = Corpus([], [], specials)  # the specials and the row builders; no items held
        weights = {k: w for k, w in loop.pair_weights.items() if w > 0}
        self.views = sorted({v for k in weights for v in k.split("-")})
        self.pairs = [(self.views.index(a), self.views.index(b), w)
                      for a, b, w in sorted((*k.split("-"), w) for k, w in weights.items())]
        self.trace = trace  # a callable(step, elements) that records what each step trained on, or None

    def next_batches(self, step: int):
        from omniembed.train.trainer import MaskedViewsBatch

        n = self.loop.pair_batch // self.world
        elements = [self.reader.next() for _ in range(n)]
        if self.trace is not None:
            self.trace(step, elements)
        rng = np.random.default_rng([self.seed, step, self.rank, 2])
        draws = rng.integers(0, 1 << 30, size=(n, 3))
        # a row per element, so every rank gathers the same number (rows of non-items are masked out)
        items = [e["item"] if e["kind"] == "item" else None for e in elements]
        present = torch.tensor([[it is not None and v in it.views() for v in self.views] for it in items],
                               dtype=torch.bool).reshape(n, len(self.views))
        labels = torch.tensor([e.get("label", 0) for e in elements], dtype=torch.long)
        pairs = MaskedViewsBatch(view_rows(self.corpus, items, self.views, draws[:, 0], self.data), present,
                                 self.pairs, labels)
        lm = None
        if self.loop.lm_every:
            cap = self.loop.lm_batch // self.world
            units, unit_draws = [], []
            for e, d in zip(elements, draws):
                if e["kind"] == "document":
                    units.append(("doc", e["body"]))
                elif e["kind"] == "item" and self.data.caption_sequences and captionable(e["item"]) \
                        and sum(k == "cap" for k, _ in units) < cap:
                    units.append(("cap", e["item"]))
                else:
                    continue
                unit_draws.append(d[1:])
            if units:
                lm = lm_rows(self.corpus, units, unit_draws, self.data)
        return pairs, lm, "stream"

    def state_dict(self) -> dict:
        return {"stream": self.reader.state_dict()}
