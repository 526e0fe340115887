"""A seeded, resumable index sampler: the data position a checkpoint records.

Epoch e visits indices 0..n-1 in the permutation drawn from Generator(seed + e); the position is just
(epoch, offset), so a resumed run reads exactly the batches the uninterrupted run would have read. Under
DDP each rank takes a strided share of every global batch.
"""

from __future__ import annotations

import torch

from omniembed.errors import ConfigError


class ResumableSampler:
    def __init__(self, n: int, seed: int = 0, shuffle: bool = True):
        if n <= 0:
            raise ConfigError(f"sampler over {n} items: the dataset is empty")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.offset = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=g)

    def take(self, k: int) -> list[int]:
        """The next k indices, crossing into the next epoch's permutation when this one runs out."""
        out: list[int] = []
        while len(out) < k:
            if self.offset == self.n:
                self.epoch, self.offset = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            step = min(k - len(out), self.n - self.offset)
            out.extend(self._order[self.offset:self.offset + step].tolist())
            self.offset += step
        return out

    def take_shard(self, global_batch: int, rank: int, world: int) -> list[int]:
        """This rank's share of the next global batch (every rank advances by the whole global batch)."""
        if global_batch % world:
            raise ConfigError(f"global batch {global_batch} does not split evenly over {world} ranks")
        return self.take(global_batch)[rank::world]

    def state_dict(self) -> dict:
        return {"n": self.n, "seed": self.seed, "shuffle": self.shuffle,
                "epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        if (state["n"], state["seed"], state["shuffle"]) != (self.n, self.seed, self.shuffle):
            raise ConfigError(
                f"sampler state for n={state['n']}, seed={state['seed']}, shuffle={state['shuffle']} "
                f"does not match this sampler (n={self.n}, seed={self.seed}, shuffle={self.shuffle})"
            )
        self.epoch, self.offset = state["epoch"], state["offset"]
        self._order = self._permutation(self.epoch)
