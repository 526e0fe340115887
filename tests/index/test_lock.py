"""The readers-writer lock: readers share, a writer is alone, a waiting writer is not starved."""

import threading
import time

from omniembed.index.lock import RWLock


def test_two_readers_hold_the_lock_at_the_same_time():
    lock = RWLock()
    inside = threading.Barrier(2, timeout=10)

    def read():
        with lock.read():
            inside.wait()  # deadlocks (times out) unless both readers are inside together

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert not inside.broken


def test_a_writer_waits_for_readers_and_excludes_new_ones():
    lock = RWLock()
    events: list[str] = []
    reader_in = threading.Event()
    release_reader = threading.Event()

    def first_reader():
        with lock.read():
            reader_in.set()
            release_reader.wait(10)
            events.append("reader1 out")

    def writer():
        with lock.write():
            events.append("writer in")

    def late_reader():
        with lock.read():
            events.append("reader2 in")

    r1 = threading.Thread(target=first_reader)
    r1.start()
    reader_in.wait(10)
    w = threading.Thread(target=writer)
    w.start()
    while not lock._writers_waiting:  # the writer is queued behind the first reader
        time.sleep(0.001)
    r2 = threading.Thread(target=late_reader)
    r2.start()
    time.sleep(0.05)
    assert events == []  # the late reader does not overtake the waiting writer
    release_reader.set()
    for t in (r1, w, r2):
        t.join(10)
    assert events == ["reader1 out", "writer in", "reader2 in"]
