"""`python -m omniembed.serve` as a real process: SIGTERM during write load drains, persists, loses nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np

from omniembed.index import Index
from omniembed.serve import Client

from .conftest import DIM, TOKEN, unit_vectors


def start_server_process(index_dir, *extra: str) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "omniembed.serve", "--index", str(index_dir), "--dim", str(DIM), "--port", "0",
           "--host", "127.0.0.1", "--token", TOKEN, "--grace", "10", "--log-level", "WARNING", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    line = proc.stdout.readline()
    match = re.search(r"listening on (\S+)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.stderr.read()}")
    return proc, match.group(1)


def test_sigterm_under_write_load_loses_no_acknowledged_upsert(tmp_path):
    index_dir = tmp_path / "ix"
    proc, target = start_server_process(index_dir)
    acknowledged: list[list[str]] = [[] for _ in range(8)]
    refused_codes: set = set()
    stop = threading.Event()

    def writer(w):
        with Client(target, token=TOKEN, retries=0, timeout=10) as c:
            n = 0
            while not stop.is_set():
                ids = [f"w{w}-{n + i}" for i in range(4)]
                try:
                    c.upsert(ids, unit_vectors(4, seed=w * 100000 + n))
                except grpc.RpcError as exc:  # the server went away: writes from here on are not acknowledged
                    refused_codes.add(exc.code())
                    return
                acknowledged[w].extend(ids)
                n += 4

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while sum(map(len, acknowledged)) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=60)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert rc == 0, proc.stderr.read()
    assert refused_codes <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, refused_codes
    acked = [i for ids in acknowledged for i in ids]
    assert len(acked) >= 200
    with Index.open(index_dir) as index:
        assert index.recovery_notes == []
        stored = index.get(acked)
        missing = [i for i, item in zip(acked, stored) if item is None]
        assert missing == [], f"{len(missing)} acknowledged upserts lost, e.g. {missing[:5]}"
        # vectors are the ones sent, not just the ids
        w0 = [i for i in acked if i.startswith("w0-")][:4]
        np.testing.assert_allclose(np.stack([it.vector for it in index.get(w0)]), unit_vectors(4, seed=0), atol=1e-6)


def test_server_process_reopens_its_persisted_index_on_restart(tmp_path):
    index_dir = tmp_path / "ix"
    proc, target = start_server_process(index_dir)
    with Client(target, token=TOKEN) as c:
        c.upsert(["kept"], unit_vectors(1, seed=3), metadata=[{"uri": "u"}])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    proc, target = start_server_process(index_dir)
    try:
        with Client(target, token=TOKEN) as c:
            assert c.get(["kept"])[0].metadata["uri"] == "u"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_omniembed_serve_subcommand_refuses_a_new_index_without_a_dim(tmp_path):
    out = subprocess.run([sys.executable, "-m", "omniembed.cli", "serve", "--index", str(tmp_path / "new"),
                          "--port", "0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "no index there yet and no dim to create one" in out.stderr
