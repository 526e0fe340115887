"""Worker processes that decode media: the one pool the runtime Embedder (so the server) and the training stages
use, so that every core decodes.

Two ways to start workers, one policy for how many:
- DecodePool: persistent worker processes of their own (omniembed.media.worker), started on first use. The
  runtime hands them large batches of encoded media and gets decoded arrays back.
- fork_pool: a multiprocessing Pool forked from the training stages, whose workers inherit what the parent
  has loaded (tokenizers, caches) instead of loading it again.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable

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


def _set_worker_threads(threads: int) -> None:
    torch = sys.modules.get("torch")  # inherited by fork when the parent uses torch; never imported here
    if torch is not None:
        torch.set_num_threads(threads)
    if "omniembed.media.container" in sys.modules:  # media decoders, likewise: the workers fill the CPUs
        sys.modules["omniembed.media.container"].set_codec_threads(threads)


_torch_warm = False


def _warm_torch() -> None:
    """Run one tiny optimizer step in this process, once. torch's first step imports some 800 modules lazily
    (dynamo, inductor's config, sympy); a forked child doing those imports hung spinning in threading (the
    parent's threads do not exist in the child), so the parent does them before it forks."""
    global _torch_warm
    torch = sys.modules.get("torch")
    if torch is None or _torch_warm:
        return
    weight = torch.nn.Parameter(torch.ones(2))  # no random init: the caller's RNG stream stays untouched
    opt = torch.optim.AdamW([weight])
    (weight * weight).sum().backward()
    opt.step()
    _torch_warm = True


def fork_pool(processes: int, threads: int = 1):
    """A fork Pool whose workers each run torch (when loaded) on `threads` threads: the workers fill the CPUs."""
    _warm_torch()
    return multiprocessing.get_context("fork").Pool(processes, _set_worker_threads, (threads,))


class DecodePool:
    """Persistent decoding workers (see the module docstring); `workers` <= 1 means decode in-process.

    Each worker is `python -m omniembed.media.worker`, fed pickled (function, items) chunks on its stdin: a
    fresh interpreter that imports only what the jobs need, never the caller's script (multiprocessing's
    spawn and fork-server start methods re-run an unguarded __main__ in every worker) and never a fork of a
    process running gRPC or ONNX Runtime threads. map() returns results in input order and raises the first
    failing input's exception, as decoding in-process would; a worker that dies (killed, out of memory)
    costs its chunk a decode in this process and is replaced on the next call. Thread-safe: concurrent
    map() calls share the workers."""

    def __init__(self, workers: int | None = None, min_batch: int = 2):
        self.workers = resolve_workers(workers)
        if self.workers < 0:
            raise ValueError(f"decode workers={workers}: must be >= 0")
        self.min_batch = max(2, min_batch)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._started = 0
        self._live: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def worth(self, tasks: int) -> bool:
        return self.workers > 1 and tasks >= self.min_batch and not self._closed

    @property
    def started(self) -> int:
        """Workers started so far (replacements included)."""
        return self._started

    def map(self, fn: Callable, items: Iterable) -> list:
        items = list(items)
        if not items:
            return []
        # Workers are taken without waiting, except the first: a call never holds some while it waits for
        # more, so concurrent calls cannot deadlock on each other; it splits its items over what it got.
        workers = [self._acquire(wait=True)]
        while len(workers) < min(self.workers, len(items)):
            more = self._acquire(wait=False)
            if more is None:
                break
            workers.append(more)
        n = len(workers)
        bounds = [len(items) * k // n for k in range(n + 1)]
        sent = []
        for k, worker in enumerate(workers):
            chunk = items[bounds[k]:bounds[k + 1]]
            sent.append((worker, worker is not None and worker.send(fn, chunk), chunk))
        out, error = [], None
        for worker, ok, chunk in sent:
            got = worker.receive() if ok else None
            if got is None or len(got) != len(chunk):  # no worker, or it died: this chunk here
                if worker is not None:
                    worker.kill()
                got = [_call(fn, x) for x in chunk]
            else:
                self._idle.put(worker)
            for value in got:
                if error is None and isinstance(value, _Failed):
                    error = value.error
                out.append(value)
        if error is not None:
            raise error
        return out

    def _acquire(self, wait: bool) -> "_Worker | None":
        """An idle worker, else a new one while fewer than `workers` are alive, else (wait) the next to come
        free; None when none can be had."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            self._live = [w for w in self._live if w.alive]
            if not self._closed and len(self._live) < self.workers:
                try:
                    worker = _Worker.start()
                except OSError:
                    return None
                self._started += 1
                self._live.append(worker)
                return worker
            if self._closed or not wait:
                return None
        return self._idle.get()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            live, self._live = list(self._live), []
        for worker in live:
            worker.stop()


class _Failed:
    """An input's exception, carried back in its place."""

    def __init__(self, error: BaseException):
        self.error = error


def _call(fn: Callable, x):
    try:
        return fn(x)
    except Exception as exc:  # re-raised by map() in input order
        return _Failed(exc)


class _Worker:
    """One `python -m omniembed.media.worker` process and its pipes."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    @classmethod
    def start(cls) -> "_Worker":
        env = dict(os.environ, OMP_NUM_THREADS="1")  # the workers fill the CPUs, one thread each
        # this very omniembed, also when it runs from a source tree rather than an install
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        from omniembed.media import worker  # the module each worker runs

        proc = subprocess.Popen([sys.executable, "-m", worker.__name__], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env)
        return cls(proc)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, fn: Callable, chunk: list) -> bool:
        try:
            pickle.dump((fn, chunk), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
            return True
        except (OSError, pickle.PicklingError, AttributeError, TypeError):
            return False

    def receive(self) -> list | None:
        try:
            return pickle.load(self.proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            return None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
