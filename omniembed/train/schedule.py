"""Learning-rate schedule: linear warmup then cosine decay to a floor; the trunk's (as a LambdaLR multiplier)
and the tokenizers' (omniembed.tokenization.train) both."""

from __future__ import annotations

import math

import torch

from omniembed.errors import ConfigError


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float, peak: float = 1.0) -> float:
    """The LR at `step` (0-based), as a multiple of `peak`: peak*(step+1)/warmup during warmup, then a half
    cosine from peak down to min_ratio*peak at total_steps, flat after."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class WarmupCosine:
    """Picklable LambdaLR callable; LambdaLR.state_dict saves its fields with the scheduler."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.1):
        if warmup_steps < 0 or total_steps <= 0 or not 0.0 <= min_ratio <= 1.0:
            raise ConfigError(
                f"schedule warmup_steps={warmup_steps}, total_steps={total_steps}, min_lr_ratio={min_ratio}: "
                "need warmup >= 0, total > 0, 0 <= min_lr_ratio <= 1"
            )
        self.warmup_steps, self.total_steps, self.min_ratio = warmup_steps, total_steps, min_ratio

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.warmup_steps, self.total_steps, self.min_ratio)


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                    min_ratio: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_ratio))
