"""The micro-batcher merges concurrent jobs, keeps results with their jobs, drops expired ones, isolates failures."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from omniembed.serve.batcher import BatcherClosed, MicroBatcher


class Recorder:
    """A stand-in for the model with a model's cost shape: a fixed cost per call plus a little per input.
    Each input x becomes the row [x, key, x * key]; a negative input is refused like corrupt media."""

    def __init__(self, per_call_s: float = 0.02):
        self.calls: list[tuple[object, list[float]]] = []
        self.per_call_s = per_call_s
        self.lock = threading.Lock()

    def __call__(self, key, inputs):
        with self.lock:
            self.calls.append((key, list(inputs)))
        if any(x < 0 for x in inputs):
            raise ValueError(f"input {min(inputs)} is negative")
        time.sleep(self.per_call_s)
        return np.array([[x, key, x * key] for x in inputs], np.float32)


def _submit_concurrently(batcher, jobs):
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def worker(j):
        key, inputs = jobs[j]
        barrier.wait()
        try:
            results[j] = batcher.submit(key, inputs).result(timeout=30)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[j] = exc

    threads = [threading.Thread(target=worker, args=(j,)) for j in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_jobs_share_model_calls_and_each_gets_its_own_rows():
    model = Recorder()
    batcher = MicroBatcher(model, max_batch=64, max_wait_s=0.05)
    jobs = [(2, [float(10 * j + i) for i in range(j % 3 + 1)]) for j in range(16)]
    results = _submit_concurrently(batcher, jobs)
    batcher.close()
    for (key, inputs), rows in zip(jobs, results):
        np.testing.assert_array_equal(rows, [[x, key, x * key] for x in inputs])
    assert len(model.calls) < len(jobs)  # merged
    assert batcher.items == sum(len(i) for _, i in jobs)
    assert batcher.batches == len(model.calls)


def test_jobs_with_different_keys_never_share_a_call():
    model = Recorder()
    batcher = MicroBatcher(model, max_batch=64, max_wait_s=0.05)
    jobs = [(1 + j % 2, [float(j)]) for j in range(8)]
    results = _submit_concurrently(batcher, jobs)
    batcher.close()
    for (key, inputs), rows in zip(jobs, results):
        assert rows[0, 1] == key
    for key, inputs in model.calls:
        assert all(int(x) % 2 == key - 1 for x in inputs)


def test_a_bad_input_fails_only_its_own_job():
    model = Recorder()
    batcher = MicroBatcher(model, max_batch=64, max_wait_s=0.05)
    jobs = [(1, [float(j)]) for j in range(6)] + [(1, [-1.0])]
    results = _submit_concurrently(batcher, jobs)
    batcher.close()
    assert isinstance(results[-1], ValueError) and "-1.0 is negative" in str(results[-1])
    for (key, inputs), rows in zip(jobs[:-1], results[:-1]):
        np.testing.assert_array_equal(rows, [[inputs[0], 1, inputs[0]]])


def test_a_job_whose_deadline_passed_is_dropped_before_the_model_sees_it():
    model = Recorder(per_call_s=0.2)
    batcher = MicroBatcher(model, max_batch=1, max_wait_s=0)
    busy = batcher.submit(1, [1.0])  # occupies the worker for 0.2 s
    time.sleep(0.02)
    late = batcher.submit(1, [7.0], deadline=time.monotonic() + 0.05)
    with pytest.raises(TimeoutError, match="deadline passed"):
        late.result(timeout=5)
    busy.result(timeout=5)
    batcher.close()
    assert all(7.0 not in inputs for _, inputs in model.calls)


def test_a_cancelled_job_is_skipped():
    model = Recorder(per_call_s=0.2)
    batcher = MicroBatcher(model, max_batch=1, max_wait_s=0)
    busy = batcher.submit(1, [1.0])
    time.sleep(0.02)
    gone = batcher.submit(1, [5.0])
    assert gone.cancel()
    busy.result(timeout=5)
    batcher.close()
    assert all(5.0 not in inputs for _, inputs in model.calls)


def test_a_job_larger_than_max_batch_runs_in_chunks_and_comes_back_whole():
    model = Recorder(per_call_s=0)
    batcher = MicroBatcher(model, max_batch=4, max_wait_s=0)
    rows = batcher.submit(3, [float(i) for i in range(10)]).result(timeout=5)
    batcher.close()
    np.testing.assert_array_equal(rows[:, 0], np.arange(10))
    assert [len(inputs) for _, inputs in model.calls] == [4, 4, 2]


def test_close_finishes_queued_work_then_refuses_new_jobs():
    model = Recorder(per_call_s=0.05)
    batcher = MicroBatcher(model, max_batch=1, max_wait_s=0)
    futures = [batcher.submit(1, [float(i)]) for i in range(4)]
    batcher.close()
    assert [f.result(timeout=0)[0, 0] for f in futures] == [0, 1, 2, 3]
    with pytest.raises(BatcherClosed):
        batcher.submit(1, [9.0])


def test_a_lone_client_is_not_held_back_by_the_batching_wait():
    # With a 60 s wait, a batcher that always waited for company would miss these 20 s result timeouts.
    model = Recorder(per_call_s=0.0)
    batcher = MicroBatcher(model, max_batch=64, max_wait_s=60.0)
    for i in range(3):
        rows = batcher.submit(1, [float(i)]).result(timeout=20)
        np.testing.assert_array_equal(rows, [[float(i), 1, float(i)]])
    batcher.close()
    assert [inputs for _, inputs in model.calls] == [[0.0], [1.0], [2.0]]
