"""Fixtures for the RAG example: a folder of mixed media from synth_world and a real server over a bundle."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples" / "rag"))  # the example's modules sit beside app.py


@pytest.fixture(scope="session")
def rag_folder(synth_world, tmp_path_factory):
    """The held-out items of synth_world as a user's folder: notes/<id>.txt (two captions as paragraphs),
    media/<id>.{png,wav,mp4}, plus a file the app must skip (data.json) and a WAV misnamed as .png."""
    from make_folder import make_folder

    root = make_folder(synth_world.root, tmp_path_factory.mktemp("rag_folder"))
    items = [r for r in synth_world.heldout if r.kind == "item"]
    (root / "data.json").write_text("{}")
    shutil.copy(items[0].media["audio"].source, root / "media" / "misnamed.png")
    return root


def start_server(bundle, index_dir) -> tuple[subprocess.Popen, str]:
    """`python -m omniembed.serve` on a free port; returns the process and 'localhost:PORT' once it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "omniembed.serve", "--bundle", os.fspath(bundle), "--index",
                             str(index_dir), "--port", "0", "--host", "127.0.0.1", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r"listening on \S+:(\d+)", line)
        if m:
            return proc, f"localhost:{m.group(1)}"
    proc.kill()
    raise RuntimeError("server did not start:\n" + "".join(seen[-20:]))


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def serve(tmp_path):
    """serve(bundle) -> 'localhost:PORT' of a fresh server with an empty index; stopped after the test."""
    procs = []

    def start(bundle):
        proc, target = start_server(bundle, tmp_path / f"index{len(procs)}")
        procs.append(proc)
        # the server's own log must not fill the pipe and stall it
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        return target

    yield start
    for p in procs:
        stop_server(p)
