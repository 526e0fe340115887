"""`omniembed ingest`: Ray Data actors embedding a manifest or shards into FAISS and Milvus Lite.

The slow tests run the real command with a real local Ray (on 127.0.0.1) and compare what it indexed with an
index built by the server's Upsert, through real servers; the others test reading and the ledger without Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from omniembed.data.manifest import iter_manifest, record_to_json
from omniembed.demo.queries import index_entries
from omniembed.index import open_index
from omniembed.ingest.ledger import Ledger, contains, entry_key
from omniembed.ingest.sources import plan_units, read_unit
from omniembed.serve import Client
from omniembed.serve.process import ServerProcess

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _ingest(*args: str, timeout: float = 300) -> dict:
    """The real command in a child process; returns its --summary."""
    summary = Path(args[args.index("--state") + 1]) / "summary.json" if "--state" in args else None
    assert summary is not None, "tests give --state"
    proc = subprocess.run([sys.executable, "-m", "omniembed", "ingest", *args, "--no-progress", "--threads", "1",
                           "--summary", str(summary)], capture_output=True, text=True, timeout=timeout, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(summary.read_text())


def _good_lines(manifest) -> list[str]:
    """The manifest's records with absolute media paths, to copy into a manifest elsewhere."""
    return [json.dumps(record_to_json(r)) for r in iter_manifest(manifest)]


def _bad_lines(root: Path) -> list[str]:
    """Records a user's manifest may hold that cannot be ingested, each for a different reason."""
    corrupt = root / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    return [
        '{"id": "broken", "kind": "item", "views": {"text": "unterminated"',
        json.dumps({"id": "extra", "kind": "item", "views": {"text": "a"}, "colour": "red"}),
        json.dumps({"id": "nofile", "kind": "item", "views": {"image": str(root / "missing.png")}}),
        json.dumps({"id": "corrupt", "kind": "item", "views": {"text": "a corrupt picture", "image": str(corrupt)}}),
    ]


def _entry_ids(record) -> list[str]:
    """What an ingest stores for a record: each view of an item, or the document under its id."""
    return [e[0] for e in index_entries([record])] if record.kind == "item" else [record.id]


def _count(manifest) -> int:
    return sum(len(_entry_ids(r)) for r in iter_manifest(manifest))


# ---- reading, without Ray --------------------------------------------------------------------------------
def test_manifest_units_keep_line_numbers_and_bad_records_become_rejects(synth_world, tmp_path):
    good = _good_lines(synth_world.heldout_path)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join([good[0], *_bad_lines(tmp_path), "", good[1]]) + "\n")
    units = plan_units(manifest, lines_per_unit=2)
    assert [(u.line, u.count) for u in units] == [(1, 2), (3, 2), (5, 2), (7, 1)]
    rows = [r for u in units for r in read_unit(u.as_row(), "fp")]
    rejects = {r["source"].rsplit(":", 1)[1]: r["reason"] for r in rows if r["reason"]}
    assert set(rejects) == {"2", "3", "4"}  # the corrupt PNG reads fine: the actor finds it does not decode
    assert "invalid JSON" in rejects["2"] and "colour" in rejects["3"] and "media file not found" in rejects["4"]
    ok = [r for r in rows if not r["reason"]]
    first, second = list(iter_manifest(synth_world.heldout_path))[:2]
    expected = _entry_ids(first) + ["corrupt/text", "corrupt/image"] + _entry_ids(second)
    assert [r["id"] for r in ok] == expected
    assert len({r["digest"] for r in ok}) == len(ok)
    again = [r for u in units for r in read_unit(u.as_row(), "fp") if not r["reason"]]
    assert [r["digest"] for r in again] == [r["digest"] for r in ok]  # same content, same digest
    other = [r for u in units for r in read_unit(u.as_row(), "another model") if not r["reason"]]
    assert not {r["digest"] for r in other} & {r["digest"] for r in ok}


def test_shard_units_read_the_same_entries_and_a_broken_shard_is_rejected(synth_world, tmp_path):
    from omniembed.data.shards import shard_manifest

    shard_manifest(synth_world.heldout_path, tmp_path / "s" / "shard-%06d.tar", maxcount=4)
    (tmp_path / "s" / "shard-000099.tar").write_bytes(b"this is no tar file")
    units = plan_units(tmp_path / "s")
    assert [u.kind for u in units] == ["shard"] * len(units) and len(units) >= 3
    rows = [r for u in units for r in read_unit(u.as_row(), "fp")]
    bad = [r for r in rows if r["reason"]]
    assert len(bad) == 1 and "shard-000099.tar" in bad[0]["reason"] and "not a readable shard" in bad[0]["reason"]
    from_manifest = [r for u in plan_units(synth_world.heldout_path) for r in read_unit(u.as_row(), "fp")]
    assert [r["id"] for r in rows if not r["reason"]] == [r["id"] for r in from_manifest]
    assert [r["content"] for r in rows if not r["reason"]] == [r["content"] for r in from_manifest]


def test_ledger_ignores_a_torn_line_and_forgets_what_the_index_lost(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.record([("a", "1"), ("b", "2"), ("c", "3")])
    ledger.record([("b", "22")])  # content changed: the later line wins
    ledger.close()
    with open(path, "a") as f:
        f.write('{"id": "d", "dig')  # a kill mid-write
    loaded = Ledger(path).load()
    assert loaded.entries == {"a": "1", "b": "22", "c": "3"}
    assert loaded.reconcile(lambda ids: [i != "c" for i in ids]) == 1
    assert Ledger(path).load().entries == {"a": "1", "b": "22"}
    keys = loaded.known_keys()
    assert contains(keys, entry_key("b", "22")) and not contains(keys, entry_key("b", "2"))
    assert not contains(np.zeros(0, np.uint64), entry_key("a", "1"))


# ---- the real command on a local Ray -----------------------------------------------------------------------
def _upsert_reference(bundle, items, index_dir: Path) -> None:
    """The index the demo builds: every view upserted through the server."""
    entries = index_entries(items)
    with ServerProcess(["--bundle", os.fspath(bundle), "--index", str(index_dir), "--threads", "1",
                        "--decode-workers", "0"]) as server, Client(server.target, timeout=120) as c:
        c.upsert([e[0] for e in entries], items=[e[1] for e in entries], metadata=[e[2] for e in entries])


def _top_ids(bundle, index: str, queries: list[str], k: int = 5) -> list[list[tuple[str, float]]]:
    with ServerProcess(["--bundle", os.fspath(bundle), "--index", index, "--threads", "1",
                        "--decode-workers", "0"]) as server, Client(server.target, timeout=120) as c:
        return [[(h.id, h.score) for h in c.search(q, k=k)] for q in queries]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["faiss", "milvus-lite"])
def test_two_actor_ingest_matches_an_index_built_by_upsert(backend, tiny_bundle, synth_world, tmp_path):
    items = [r for r in iter_manifest(synth_world.heldout_path) if r.kind == "item"]
    reference = tmp_path / "upserted"
    _upsert_reference(tiny_bundle, items, reference)
    target = str(tmp_path / "ingested") if backend == "faiss" else f"milvus-lite://{tmp_path}/ingested.db"
    items_only = tmp_path / "items.jsonl"
    items_only.write_text("".join(l + "\n" for l in _good_lines(synth_world.heldout_path)
                                  if json.loads(l)["kind"] == "item"))
    summary = _ingest(str(items_only), "--bundle", os.fspath(tiny_bundle), "--index", target, "--actors", "2",
                      "--batch-size", "4", "--state", str(tmp_path / "state"))
    n = len(index_entries(items))
    assert summary["written"] == n and summary["rejected"] == 0 and summary["index_count"] == n
    assert summary["actors"] >= 1

    with open_index(str(reference)) as ref, open_index(target) as got:
        ids = [e[0] for e in index_entries(items)]
        for a, b in zip(ref.get(ids), got.get(ids)):
            assert b is not None and b.metadata == a.metadata
            np.testing.assert_allclose(b.vector, a.vector, atol=2e-5)  # the same model, the same vector
    queries = [i.texts[-1] for i in items]  # captions the index holds, and ones it does not
    want, have = _top_ids(tiny_bundle, str(reference), queries), _top_ids(tiny_bundle, target, queries)
    for w, h in zip(want, have):
        assert h[0][0] == w[0][0]  # the same id ranked first
        assert [i for i, _ in h] == [i for i, _ in w] or np.allclose([s for _, s in h], [s for _, s in w], atol=1e-4)


@pytest.mark.slow
def test_rejects_resume_and_changed_content(tiny_bundle, synth_world, tmp_path):
    good = _good_lines(synth_world.heldout_path)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join([*good, *_bad_lines(tmp_path)]) + "\n")
    args = (str(manifest), "--bundle", os.fspath(tiny_bundle), "--index", str(tmp_path / "ix"),
            "--state", str(tmp_path / "state"))
    first = _ingest(*args)
    rejects = [json.loads(l) for l in Path(first["rejects"]).read_text().splitlines()]
    assert {r["id"] for r in rejects} == {"", "extra", "nofile", "corrupt/image"}
    assert all(r["reason"] for r in rejects)
    corrupt = next(r for r in rejects if r["id"] == "corrupt/image")
    assert corrupt["source"] == f"{manifest}:{len(good) + 4}" and "image" in corrupt["reason"]
    n = _count(synth_world.heldout_path)
    assert first["written"] == n + 1 and first["rejected"] == 4  # + corrupt/text, which is fine

    second = _ingest(*args)  # nothing changed: nothing embedded again
    assert second["written"] == 0 and second["skipped"] == n + 1 and second["rejected"] == 4

    obj = json.loads(good[0])
    obj["views"]["text"] = ["an altogether different caption"]
    manifest.write_text("\n".join([json.dumps(obj), *good[1:], *_bad_lines(tmp_path)]) + "\n")
    third = _ingest(*args)
    assert third["written"] == 1 and third["skipped"] == n  # only the changed view
    with open_index(str(tmp_path / "ix")) as ix:
        assert ix.get([f"{obj['id']}/text"])[0].metadata["uri"] == "an altogether different caption"
        assert len(ix) == n + 1


@pytest.mark.slow
def test_a_killed_ingest_keeps_everything_it_reported_done_and_resumes(tiny_bundle, synth_world, tmp_path):
    state, index = tmp_path / "state", tmp_path / "ix"
    args = [str(synth_world.manifest_path), "--bundle", os.fspath(tiny_bundle), "--index", str(index),
            "--state", str(state), "--batch-size", "1", "--threads", "1", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "omniembed", "ingest", *args], env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ledger = None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(state.glob("ledger-*.jsonl"))
            if found and len(found[0].read_text().splitlines()) >= 8:
                ledger = found[0]
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait()
    assert ledger is not None, f"the ingest wrote no progress: {proc.stderr.read()[-2000:]}"
    done = Ledger(ledger).load().entries
    with open_index(str(index)) as ix:
        assert all(got is not None for got in ix.get(list(done)))  # reported done: in the index
    total = _count(synth_world.manifest_path)
    assert len(done) < total, "the ingest finished before the kill; nothing was tested"

    resumed = _ingest(*args[:-3])
    assert resumed["skipped"] >= len(done) and resumed["written"] + resumed["skipped"] == total
    assert resumed["index_count"] == total


LISTENERS = r'''
import json, os, sys
def listening():
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(name).read().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A":
                out.add(f[1])
    return out
before = listening()
if sys.argv[2] == "ray-first":
    import ray  # a user's script that imported ray before asking for an ingest
from omniembed.ingest.cluster import connect
import ray
connect(None, 2)
assert ray.get(ray.remote(lambda: 1).remote()) == 1  # a worker is up, so every Ray service is
from omniembed.index import open_index
ix = open_index("milvus-lite://" + sys.argv[1], dim=4)
print(json.dumps(sorted(listening() - before)))
ix.close()
ray.shutdown()
'''


@pytest.mark.slow
@pytest.mark.parametrize("order", ["ingest-first", "ray-first"])
def test_the_local_ray_and_milvus_lite_listen_on_loopback_only(order, tmp_path):
    out = subprocess.run([sys.executable, "-c", LISTENERS, str(tmp_path / "m.db"), order], capture_output=True, text=True,
                         timeout=180, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    opened = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(opened) >= 3  # GCS, raylet, object manager, ... (else the check saw nothing)
    loopback = ("0100007F:", "00000000000000000000000001000000:", "0000000000000000FFFF00000100007F:")
    assert [a for a in opened if not a.startswith(loopback)] == []


@pytest.mark.slow
def test_ingest_into_an_existing_ray_cluster_by_address(tiny_bundle, synth_world, tmp_path):
    """--ray-address: a Ray head started apart (`ray start --head`, on loopback), which the ingest joins and
    leaves running."""
    from socket import socket

    with socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's unix sockets live under it (108 bytes max)
    import secrets

    # a secured cluster, as a user would run one: the head and the driver share a token
    env = {**ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port",
                             str(port), "--num-cpus", "3", "--include-dashboard", "false",
                             "--temp-dir", temp],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        summary = None
        deadline = time.monotonic() + 120
        while summary is None:  # the head takes a few seconds to accept drivers
            proc = subprocess.run([sys.executable, "-m", "omniembed", "ingest", str(synth_world.heldout_path),
                                   "--bundle", os.fspath(tiny_bundle), "--index", str(tmp_path / "ix"),
                                   "--state", str(tmp_path / "state"), "--actors", "2", "--threads", "1",
                                   "--ray-address", f"127.0.0.1:{port}", "--no-progress",
                                   "--summary", str(tmp_path / "summary.json")],
                                  capture_output=True, text=True, timeout=300, env=env)
            if proc.returncode == 0:
                summary = json.loads((tmp_path / "summary.json").read_text())
            else:
                assert head.poll() is None and time.monotonic() < deadline, proc.stderr[-3000:]
                time.sleep(2)
        assert summary["written"] == _count(synth_world.heldout_path) and summary["rejected"] == 0
        assert head.poll() is None  # the cluster was joined, not stopped
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        _kill_mentioning(temp)  # any Ray process of this head that left the group
        shutil.rmtree(temp, ignore_errors=True)


def _kill_mentioning(text: str) -> None:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode("utf-8", "replace"):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue
