"""Run a few joint training steps on the tiny model, alone or under torchrun, and save a checkpoint.

Used by test_distributed.py: the same global batches go through one process or are split over ranks, and
the final parameters must agree. Not a test module itself (no test_ prefix).
"""

import argparse
import sys

import torch

from omniembed.train import distributed as D
from omniembed.model import load_model_config, OmniModel
from omniembed.train.sampler import ResumableSampler
from omniembed.train.trainer import PairBatch, TokenBatch, TrainConfig, Trainer

VOCAB, LM_LEN, GLOBAL_BATCH = 64, 16, 8


def dataset(n=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, 24, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    lm = 4 + (start + step * torch.arange(LM_LEN)) % 24  # (n, LM_LEN), no padding: equal tokens per rank
    labels = torch.randint(0, 36, (n,), generator=g)
    a = torch.stack([4 + labels // 6, 10 + labels % 6, torch.full_like(labels, 1)], dim=1)
    b = torch.stack([40 + labels % 6, 30 + labels // 6, 50 + labels % 6, torch.full_like(labels, 1)], dim=1)
    return lm, a, b, labels


def build(parallel, seed, mixed=False):
    torch.manual_seed(seed)
    model = OmniModel(load_model_config("tiny", vocab_size=VOCAB, pad_id=0, grid_position=False))
    cfg = TrainConfig(lr=1e-3, warmup_steps=1, total_steps=10, parallel=parallel, ddp_find_unused=mixed)
    trainer = Trainer(model, cfg)
    return trainer, ResumableSampler(64, seed=3)


def main(argv, log=print):
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--parallel", default="auto")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--resume-at", type=int, default=-1, help="save and resume into fresh objects before this step")
    p.add_argument("--mixed", action="store_true", help="cycle joint, LM-only and pair-only steps")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    D.init_from_env("gloo")
    trainer, sampler = build(args.parallel, seed=0, mixed=args.mixed)
    lm, a, b, labels = dataset()
    for step in range(args.steps):
        if args.resume_at == step:
            # save, then continue from the file in fresh objects built from other initial weights
            mid = args.out + ".mid"
            trainer.save(mid, data_state=sampler.state_dict())
            trainer, sampler = build(args.parallel, seed=1, mixed=args.mixed)
            sampler.load_state_dict(trainer.resume(mid)["data_state"])
        idx = sampler.take_shard(GLOBAL_BATCH, D.rank(), D.world_size())
        kind = ("joint", "lm", "pairs")[step % 3] if args.mixed else "joint"
        result = trainer.train_step(
            None if kind == "pairs" else TokenBatch(lm[idx], torch.ones_like(lm[idx], dtype=torch.bool)),
            None if kind == "lm" else PairBatch(a[idx], torch.ones_like(a[idx], dtype=torch.bool),
                                                b[idx], torch.ones_like(b[idx], dtype=torch.bool), labels[idx]),
        )
        assert not result.skipped, result.reason
        if D.rank() == 0:
            log(f"step {result.step} loss {result.loss:.6f}")
    trainer.save(args.out, data_state=sampler.state_dict())
    D.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], log=lambda line: print(line, flush=True)))
