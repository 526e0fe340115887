"""Forked worker processes for the CPU-bound data stages (decoding, tokenizing, tokenizer training).

Fork, so workers inherit what the parent already loaded (tokenizers, decoded media) instead of loading it
again; where fork is not available the stages run inline, with the same result.
"""

from __future__ import annotations

import multiprocessing
import os
import sys


def resolve_workers(workers: int | None) -> int:
    """A configured worker count, or by default one per CPU, up to 8."""
    return workers if workers is not None else min(8, os.cpu_count() or 1)


def can_fork() -> bool:
    return sys.platform.startswith("linux")


def worth_forking(workers: int, tasks: int) -> bool:
    """Whether `tasks` independent jobs are worth a pool of `workers`: a few jobs per worker at least."""
    return workers > 1 and tasks >= 2 * workers and can_fork()


def fork_pool(processes: int, threads: int = 1):
    """A fork Pool whose workers each run torch on `threads` threads (1 by default: the workers fill the CPUs)."""
    import torch

    return multiprocessing.get_context("fork").Pool(processes, torch.set_num_threads, (threads,))
