"""Tokens/s of one joint training step (next-token + Matryoshka contrastive) on this machine, fp32 vs bf16.

    .venv/bin/python -m bench.train_step [--models tiny small] [--steps 8] [--vocab 4096] [--threads 2]

Writes bench/results/train_step.md. Tokens counted are the real (non-pad) tokens through the trunk in
one step: the LM batch plus both views of the pair batch. Synthetic random ids: speed does not depend on
content. The machine may be shared, so the report records the load average next to the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from bench.common import cpu_model
from omniembed.model import OmniModel, load_model_config
from omniembed.train.trainer import PairBatch, TokenBatch, TrainConfig, Trainer, cpu_has_native_bf16

RESULTS = Path(__file__).resolve().parent / "results" / "train_step.md"
# per model: (lm batch, lm length, pair batch, pair view length)
SHAPES = {"tiny": (16, 128, 16, 32), "small": (16, 256, 32, 64), "base": (16, 1024, 64, 128)}


def matmul_gflops(dtype: torch.dtype, n: int = 1024, reps: int = 5) -> float:
    """Raw n x n matrix-product rate: shows whether this CPU has native bf16 (the step numbers follow it)."""
    x, y = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    x @ y
    t0 = time.perf_counter()
    for _ in range(reps):
        x @ y
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def measure(name: str, precision: str, vocab: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = OmniModel(load_model_config(name, vocab_size=vocab, pad_id=0, grid_position=False))
    trainer = Trainer(model, TrainConfig(precision=precision, warmup_steps=1, total_steps=1000, spike_factor=0))
    lb, lt, pb, pt = SHAPES[name]
    g = torch.Generator().manual_seed(1)
    lm = torch.randint(1, vocab, (lb, lt), generator=g)
    a, b = torch.randint(1, vocab, (pb, pt), generator=g), torch.randint(1, vocab, (pb, pt), generator=g)
    ones = lambda x: torch.ones_like(x, dtype=torch.bool)  # noqa: E731
    lm_batch, pairs = TokenBatch(lm, ones(lm)), PairBatch(a, ones(a), b, ones(b))
    tokens = lm.numel() + a.numel() + b.numel()
    for _ in range(2):  # warm-up: allocator, kernels
        trainer.train_step(lm_batch, pairs)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        trainer.train_step(lm_batch, pairs)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"model": name, "precision": precision, "params_m": model.num_params() / 1e6, "tokens": tokens,
            "step_s": med, "min_s": min(times), "tok_s": tokens / med}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["tiny", "small"], choices=sorted(SHAPES))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    gflops = {dt: matmul_gflops(dt) for dt in (torch.float32, torch.bfloat16)}
    rows = []
    for name in args.models:
        for precision in args.precisions:
            r = measure(name, precision, args.vocab, args.steps)
            print(f"{name:6s} {precision}: {r['tok_s']:9.0f} tokens/s  (median step {r['step_s']:.3f} s)",
                  flush=True)
            rows.append(r)
    load_after = os.getloadavg()
    cmd = "python -m bench.train_step " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# Training-step throughput (joint next-token + Matryoshka contrastive step)",
        "",
        f"- command: `{cmd.strip()}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads",
        f"- load average (1 min) before/after: {load_before[0]:.1f} / {load_after[0]:.1f} "
        "(other jobs share this machine: treat absolute numbers as lower bounds)",
        f"- 1024x1024 matmul: fp32 {gflops[torch.float32]:.1f} GFLOP/s, bf16 {gflops[torch.bfloat16]:.1f} GFLOP/s "
        f"(native bf16 on this CPU: {cpu_has_native_bf16()})",
        f"- vocab {args.vocab}; {args.steps} timed steps after 2 warm-up steps; median step time",
        "- step = forward (LM pass + one embedding pass per view), losses, backward, clip, AdamW",
        "",
        "| model | params (M) | precision | tokens/step | median step (s) | best step (s) | tokens/s |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params_m']:.2f} | {r['precision']} | {r['tokens']} | "
                     f"{r['step_s']:.3f} | {r['min_s']:.3f} | {r['tok_s']:.0f} |")
    for name in args.models:
        by = {r["precision"]: r for r in rows if r["model"] == name}
        if {"fp32", "bf16"} <= set(by):
            lines.append("")
            lines.append(f"{name}: bf16 / fp32 throughput = {by['bf16']['tok_s'] / by['fp32']['tok_s']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
