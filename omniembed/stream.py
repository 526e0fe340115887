"""The mixed training stream over a tokenized Corpus: contrastive pair batches and next-token batches.

Each step draws one modality pair (by `loop.pair_weights`) and a global batch of items that have both
views; rows whose items share a duplicate group get the same label, so they are not negatives of each
other. LM batches mix interleaved documents with caption sequences ("<image> codes caption").

Determinism: random choices of step s come from a generator seeded with (seed, s), and which items come
next is the position of seeded samplers (omniembed.sampler), saved in the checkpoint: a resumed run reads
the same batches as an uninterrupted one. Every rank computes the global batch and keeps its share.
"""

from __future__ import annotations

import numpy as np
import torch

from omniembed.corpus import Corpus
from omniembed.errors import ConfigError
from omniembed.runconfig import DataConfig, LoopConfig
from omniembed.sampler import ResumableSampler
from omniembed.trainer import PairBatch, TokenBatch

CAPTIONED_VIEWS = ("image", "audio", "video")


def pad_batch(seqs: list[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest: ids (B, T) long and pad_mask (B, T) bool, True on real tokens."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, :len(s)] = True
    return ids, mask


class TrainStream:
    def __init__(self, corpus: Corpus, loop: LoopConfig, data: DataConfig, seed: int, rank: int = 0,
                 world: int = 1):
        self.corpus, self.loop, self.data, self.seed = corpus, loop, data, seed
        self.rank, self.world = rank, world
        train = corpus.split("train")
        groups = sorted({corpus.items[i].group for i in train})
        self.group_index = {g: k for k, g in enumerate(groups)}
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
        if not self.pairs:
            raise ConfigError(f"no training item has both views of any pair in loop.pair_weights "
                              f"{sorted(loop.pair_weights)}: nothing to train the contrastive head on")
        for n, b in (("pair_batch", loop.pair_batch), ("lm_batch", loop.lm_batch)):
            if b % world:
                raise ConfigError(f"loop.{n}={b} does not split evenly over {world} processes")
        # LM units: ("doc", index) or ("cap", item index) for items with captions and a media block
        self.lm_units = [("doc", j) for j in range(len(corpus.documents))]
        if data.caption_sequences:
            self.lm_units += [("cap", i) for i in train
                              if corpus.items[i].texts and any(v in corpus.items[i].blocks for v in CAPTIONED_VIEWS)]
        self.lm_sampler = ResumableSampler(len(self.lm_units), seed=seed * 1000 + 999) if self.lm_units else None

    def _rng(self, step: int, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step, salt])

    def pair_batch(self, step: int) -> tuple[PairBatch, str]:
        rng = self._rng(step, 0)
        p = np.asarray(self.weights) / sum(self.weights)
        name = self.pairs[int(rng.choice(len(self.pairs), p=p))]
        a_view, b_view = name.split("-")
        picks = self.samplers[name].take_shard(self.loop.pair_batch, self.rank, self.world)
        captions = rng.integers(0, 1 << 30, size=self.loop.pair_batch)[self.rank::self.world]
        items = [self.corpus.items[self.members[name][k]] for k in picks]
        mx = self.data.max_view_tokens
        a = [self.corpus.view_ids(it, a_view, int(c), mx) for it, c in zip(items, captions)]
        b = [self.corpus.view_ids(it, b_view, int(c), mx) for it, c in zip(items, captions)]
        pad = self.corpus.specials["pad"]
        a_ids, a_mask = pad_batch(a, pad)
        b_ids, b_mask = pad_batch(b, pad)
        labels = torch.tensor([self.group_index[it.group] for it in items], dtype=torch.long)
        return PairBatch(a_ids, a_mask, b_ids, b_mask, labels), name

    def lm_batch(self, step: int) -> TokenBatch | None:
        if self.lm_sampler is None or not self.loop.lm_every or step % self.loop.lm_every:
            return None
        rng = self._rng(step, 1)
        choice = rng.integers(0, 1 << 30, size=(self.loop.lm_batch, 2))[self.rank::self.world]
        seqs, starts = [], []  # starts: first token the loss counts (0: all of it)
        for k, (c_view, c_text) in zip(self.lm_sampler.take_shard(self.loop.lm_batch, self.rank, self.world),
                                       choice):
            kind, idx = self.lm_units[k]
            if kind == "doc":
                seqs.append(self.corpus.document_sequence(idx, self.data.lm_max_len))
                starts.append(0)
                continue
            item = self.corpus.items[idx]
            views = [v for v in CAPTIONED_VIEWS if v in item.blocks]
            seq, prompt = self.corpus.caption_sequence(item, views[int(c_view) % len(views)], int(c_text),
                                                       self.data.lm_max_len)
            seqs.append(seq)
            starts.append(prompt if self.data.caption_loss == "text" else 0)
        ids, mask = pad_batch(seqs, self.corpus.specials["pad"])
        loss_mask = mask & (torch.arange(ids.shape[1])[None, :] >= torch.tensor(starts)[:, None])  # (B, T)
        return TokenBatch(ids, mask, loss_mask)

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
