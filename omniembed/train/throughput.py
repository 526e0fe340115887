"""Training throughput: tokens per second and model FLOPs utilisation (MFU), as logged in RUN_DIR/steps.jsonl
and written to RUN_DIR/throughput.json.

Model FLOPs per token follow the PaLM appendix count: 6 x the non-embedding parameters (forward and
backward matrix products) + 12 x layers x width x sequence length (attention scores and values), for the
tokens the step actually holds (padding excluded). Activation recomputation is not counted (that would be
hardware FLOPs, not model FLOPs). The peak is per device: `train.peak_tflops`, else the dense bf16 tensor-core
peak of known GPUs from their datasheets, else on CPU a short fp32 matrix-product probe of this machine
(a measured peak, so CPU MFU reads against what this CPU reaches, not against a datasheet).
"""

from __future__ import annotations

import time

import torch

# dense (no sparsity) bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name()
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "GH200": 989.0, "B200": 2250.0, "A100": 312.0, "A800": 312.0,
                   "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A10G": 125.0, "A10": 125.0, "RTX 4090": 165.0,
                   "RTX 3090": 71.0, "V100": 125.0, "T4": 65.0}


def flops_per_token(model, seq_len: float) -> float:
    cfg = model.cfg
    embed = sum(p.numel() for n, p in model.named_parameters() if "tok_emb" in n or "grid_emb" in n)
    return 6.0 * (model.num_params() - embed) + 12.0 * cfg.n_layers * cfg.d_model * seq_len


def peak_flops(device: torch.device, configured_tflops: float | None) -> tuple[float, str]:
    """(peak FLOP/s of one device, where the number comes from)."""
    if configured_tflops:
        return configured_tflops * 1e12, "train.peak_tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in GPU_PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"datasheet bf16 dense peak of {name}"
        return float("nan"), f"unknown GPU {name!r}: set train.peak_tflops"
    return _cpu_matmul_flops(), f"measured fp32 matmul peak on {torch.get_num_threads()} thread(s)"


def _cpu_matmul_flops(n: int = 512, seconds: float = 0.2) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2.0 * n ** 3 * reps / (time.perf_counter() - t0)


class Throughput:
    """Accumulates tokens and (token-weighted) sequence lengths; reports tokens/s and MFU for the world."""

    def __init__(self, model, device: torch.device, world: int, configured_tflops: float | None):
        self.model, self.world = model, world
        self.peak, self.peak_source = peak_flops(device, configured_tflops)
        self.tokens, self.len_weighted, self.t0 = 0, 0.0, time.perf_counter()
        self.t_first, self.tokens_first = None, 0  # when the first step's batches were in hand

    def add(self, tokens: int, mean_len: float) -> None:
        self.tokens += tokens
        self.len_weighted += tokens * mean_len

    def first_batches_in(self) -> None:
        """Marks the end of start-up (e.g. a stream's workers starting): `steady_tokens_per_s` counts from here."""
        if self.t_first is None:
            self.t_first, self.tokens_first = time.perf_counter(), self.tokens

    def report(self) -> dict:
        seconds = max(time.perf_counter() - self.t0, 1e-9)
        tok_s = self.tokens * self.world / seconds  # every rank's share is about this one's
        seq = self.len_weighted / max(self.tokens, 1)
        fpt = flops_per_token(self.model, seq)
        mfu = tok_s * fpt / (self.peak * self.world) if self.peak == self.peak else float("nan")
        steady = None
        if self.t_first is not None and time.perf_counter() > self.t_first and self.tokens > self.tokens_first:
            steady = (self.tokens - self.tokens_first) * self.world / (time.perf_counter() - self.t_first)
        return {"tokens": self.tokens * self.world, "seconds": round(seconds, 3), "tokens_per_s": round(tok_s, 1),
                "steady_tokens_per_s": None if steady is None else round(steady, 1),
                "mfu": round(mfu, 5) if mfu == mfu else None, "flops_per_token": fpt,
                "peak_tflops_per_device": round(self.peak / 1e12, 3) if self.peak == self.peak else None,
                "peak_source": self.peak_source, "world": self.world, "mean_seq_len": round(seq, 1)}


def batch_tokens(batch) -> tuple[int, float]:
    """(real tokens, mean real length per sequence) of a pair / views / token batch (None: 0)."""
    if batch is None:
        return 0, 0.0
    if hasattr(batch, "present"):  # a streamed batch: only the rows that have a view count
        tokens, rows = batch.tokens(), int(batch.present.sum())
        return tokens, tokens / max(rows, 1)
    masks = [m for _, m in batch.views] if hasattr(batch, "views") else \
        [batch.a_mask, batch.b_mask] if hasattr(batch, "a_mask") else [batch.pad_mask]
    tokens = int(batch.tokens()) if hasattr(batch, "tokens") else int(batch.pad_mask.sum())
    rows = sum(m.shape[0] for m in masks)
    return tokens, float(sum(int(m.sum()) for m in masks)) / max(rows, 1)
