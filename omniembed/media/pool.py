"""Worker processes that decode media: the one pool the runtime Embedder (so the server) and the training stages
use, so that every core decodes.

Two ways to start workers, one policy for how many:
- DecodePool: persistent workers started by a fork server (a clean process, never a fork of a process running
  gRPC or ONNX Runtime threads), created on first use. The runtime hands it large batches of encoded media
  and gets decoded arrays back.
- fork_pool: a multiprocessing Pool forked from the training stages, whose workers inherit what the parent
  has loaded (tokenizers, caches) instead of loading it again.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool

MAX_DEFAULT_WORKERS = 8


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_workers(workers: int | None) -> int:
    """A configured worker count, or by default one per CPU, up to MAX_DEFAULT_WORKERS."""
    return workers if workers is not None else min(MAX_DEFAULT_WORKERS, cpu_count())


def can_fork() -> bool:
    return sys.platform.startswith("linux")


def worth_forking(workers: int, tasks: int) -> bool:
    """Whether `tasks` independent jobs are worth a pool of `workers`: a few jobs per worker at least."""
    return workers > 1 and tasks >= 2 * workers and can_fork()


def _set_torch_threads(threads: int) -> None:
    torch = sys.modules.get("torch")  # inherited by fork when the parent uses torch; never imported here
    if torch is not None:
        torch.set_num_threads(threads)


def fork_pool(processes: int, threads: int = 1):
    """A fork Pool whose workers each run torch (when loaded) on `threads` threads: the workers fill the CPUs."""
    return multiprocessing.get_context("fork").Pool(processes, _set_torch_threads, (threads,))


def _start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


class DecodePool:
    """Persistent decoding workers (see the module docstring); `workers` <= 1 means decode in-process.

    map() returns results in input order and raises the first input's exception as decoding in-process would.
    A worker that dies (killed, out of memory) costs that batch a fresh pool, not the caller's process."""

    def __init__(self, workers: int | None = None, min_batch: int = 2):
        self.workers = resolve_workers(workers)
        if self.workers < 0:
            raise ValueError(f"decode workers={workers}: must be >= 0")
        self.min_batch = max(2, min_batch)
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def worth(self, tasks: int) -> bool:
        return self.workers > 1 and tasks >= self.min_batch

    def map(self, fn: Callable, items: Iterable) -> list:
        items = list(items)
        chunksize = max(1, len(items) // (4 * self.workers))
        try:
            return list(self._pool().map(fn, items, chunksize=chunksize))
        except BrokenProcessPool:
            self._reset()
            return [fn(x) for x in items]  # decode in-process this once; the next batch starts new workers

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                ctx = multiprocessing.get_context(_start_method())
                self._executor = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=ctx)
            return self._executor

    def _reset(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
