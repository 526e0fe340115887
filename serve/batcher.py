"""Dynamic micro-batching: work from concurrent requests is merged into one call (the model's, or FAISS's).

One worker thread takes every job waiting (up to `max_batch` items) and runs one call per distinct key (the
embed dim; a search's k, dim and filter). Work that arrives while a call runs joins the next one, so under
concurrent load batches form by themselves and a lone client pays no batching delay. With `max_wait_s` > 0
the worker also waits up to that long for more jobs when the previous call served more than one job; by
default it does not (a closed-loop client sends its next request only after its answer, so waiting for
company that cannot come only adds latency).

Jobs carry their request's deadline; a job whose deadline passed, or whose caller gave up, is dropped
before the model sees it. When a merged call fails (one request's bad input), each job is retried alone
so only the guilty request gets the error.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Hashable, Sequence

import numpy as np

RunFn = Callable[[Hashable, Sequence[Any]], Sequence[Any]]  # (key, inputs) -> one result per input (array rows)


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


class _Job:
    __slots__ = ("key", "inputs", "deadline", "future")

    def __init__(self, key: Hashable, inputs: Sequence[Any], deadline: float | None):
        self.key, self.inputs, self.deadline = key, list(inputs), deadline
        self.future: Future = Future()


class MicroBatcher:
    """`submit(key, inputs, deadline)` -> Future of len(inputs) results (an (N, D) array when `run` returns
    arrays, else a list), run in merged batches."""

    def __init__(self, run: RunFn, *, max_batch: int = 32, max_wait_s: float = 0.0,
                 on_batch: Callable[[int], None] | None = None, name: str = "omniembed-batcher"):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_s >= 0, got {max_batch}, {max_wait_s}")
        self._run, self.max_batch, self.max_wait_s = run, max_batch, max_wait_s
        self._on_batch = on_batch  # called with the item count of each model call, for metrics
        self._queue: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.items = 0
        self.batches = 0
        self._last_jobs = 1  # jobs merged into the previous call: > 1 means concurrent load, worth waiting for
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, inputs: Sequence[Any], deadline: float | None = None) -> Future:
        """deadline: time.monotonic() after which the result is useless (the request's gRPC deadline)."""
        job = _Job(key, inputs, deadline)
        with self._cond:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            self._queue.append(job)
            self._cond.notify()
        return job.future

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish what is queued, stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    # ---- worker
    def _loop(self) -> None:
        while True:
            jobs = self._collect()
            if jobs is None:
                return
            by_key: dict[Hashable, list[_Job]] = {}
            for job in jobs:
                by_key.setdefault(job.key, []).append(job)
            for key, group in by_key.items():
                self._run_group(key, group)

    def _collect(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            first_at = time.monotonic()
            jobs = [self._queue.popleft()]
            size = len(jobs[0].inputs)
            while size < self.max_batch:
                if self._queue:
                    if size + len(self._queue[0].inputs) > self.max_batch:
                        break
                    job = self._queue.popleft()
                    jobs.append(job)
                    size += len(job.inputs)
                    continue
                left = first_at + self.max_wait_s - time.monotonic()
                if left <= 0 or self._closed or self._last_jobs <= 1:
                    break
                self._cond.wait(left)
            self._last_jobs = len(jobs)
        return jobs

    def _run_group(self, key: Hashable, group: list[_Job]) -> None:
        now = time.monotonic()
        live = []
        for job in group:
            if job.future.cancelled() or not job.future.set_running_or_notify_cancel():
                continue
            if job.deadline is not None and now >= job.deadline:
                job.future.set_exception(TimeoutError("deadline passed while waiting for a batch"))
                continue
            live.append(job)
        if not live:
            return
        try:
            vectors = self._call(key, [x for job in live for x in job.inputs])
        except Exception as exc:  # noqa: BLE001 - isolate the failing request, see below
            if len(live) == 1:
                live[0].future.set_exception(exc)
                return
            # One request's input broke the merged call: run each alone so the others still succeed.
            for job in live:
                try:
                    job.future.set_result(self._call(key, job.inputs))
                except Exception as single_exc:  # noqa: BLE001
                    job.future.set_exception(single_exc)
            return
        start = 0
        for job in live:
            job.future.set_result(vectors[start : start + len(job.inputs)])
            start += len(job.inputs)

    def _call(self, key: Hashable, inputs: list[Any]) -> Sequence[Any]:
        out = []
        for start in range(0, len(inputs), self.max_batch):  # an oversize job runs in max_batch chunks
            chunk = inputs[start : start + self.max_batch]
            results = self._run(key, chunk)
            if len(results) != len(chunk):
                raise RuntimeError(f"batch call returned {len(results)} results for {len(chunk)} inputs")
            out.append(results)
            self.items += len(chunk)
            self.batches += 1
            if self._on_batch:
                self._on_batch(len(chunk))
        if len(out) == 1:
            return out[0]
        return np.concatenate(out) if isinstance(out[0], np.ndarray) else [r for part in out for r in part]
