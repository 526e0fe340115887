"""Streamed training through `python -m omniembed.train`: shards packed by `omniembed shards` and a JSONL
manifest streamed as it is, read by 2 DataLoader workers per rank; every record used exactly once per epoch
across 2 DDP ranks; a run killed mid-way resumes to the losses of an unbroken run, step for step."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from omniembed.data.pack import pack_manifest
from omniembed.train.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shards(synth_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    summary = pack_manifest(synth_world.manifest_path, out, maxcount=8, workers=1)
    assert summary["rejects"] == 0 and summary["shards"] >= 4
    return out


def train_ids(manifest):
    ids = []
    for line in open(manifest):
        if line.strip():
            obj = json.loads(line)
            if obj.get("split") != "heldout":
                ids.append(obj["id"])
    return ids


def stream_args(tiny_args, synth_world, out, source, shards, *extra):
    data = [f"data.shards={shards}"] if source == "shards" else ["data.stream=true"]
    return tiny_args(out, *data, f"data.heldout={synth_world.heldout_path}", "data.loader_workers=2",
                     "data.shuffle_buffer=16", "loop.eval_captions=0", *extra)


def torchrun(namespace, args, workdir, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "omniembed.train", *args]
    (code, output), = namespace([cmd], {**os.environ, "OMP_NUM_THREADS": "1"}, workdir)
    assert code == 0, output[-6000:]


def consumed(run_dir, ranks=2):
    """[(epoch, id)] of every record the ranks trained on, from data.record_ids' files."""
    got = []
    for r in range(ranks):
        for line in open(run_dir / f"stream-ids-rank{r}.jsonl"):
            row = json.loads(line)
            got += [(e, i) for e, i, k in zip(row["epochs"], row["ids"], row["kinds"]) if k != "skip"]
    return got


@pytest.mark.parametrize("source", ["shards", "jsonl"])
def test_two_ranks_of_two_workers_use_every_record_exactly_once_per_epoch(source, tiny_args, synth_world, shards,
                                                                           tmp_path, in_loopback_namespace):
    out = tmp_path / "run"
    # 16 steps of 8 records: about two epochs of the 66 training records, whichever stream is longest
    torchrun(in_loopback_namespace, stream_args(tiny_args, synth_world, out, source, shards, "loop.steps=16",
                                                "loop.pair_batch=8", "loop.lm_batch=8", "data.record_ids=true"),
             tmp_path / "logs")
    got = consumed(out)
    expected = train_ids(synth_world.manifest_path)
    first = [i for e, i in got if e == 0]
    assert sorted(first) == sorted(expected)  # all of them, none twice
    second = [i for e, i in got if e == 1]
    assert len(second) == len(set(second)) and set(second) <= set(expected)
    ranks = [{json.loads(l)["ids"][0] for l in open(out / f"stream-ids-rank{r}.jsonl")} for r in range(2)]
    assert not ranks[0] & ranks[1]  # the ranks read different records
    assert (out / "throughput.json").is_file() and json.loads((out / "throughput.json").read_text())["world"] == 2
    if source == "shards":
        # on another world size the positions do not carry over: the earliest epoch restarts, said in the log
        assert main(stream_args(tiny_args, synth_world, out, source, shards, "loop.steps=18", "loop.pair_batch=8",
                                "loop.lm_batch=8", "--resume")) == 0
        assert "positions do not carry over" in (out / "train.log").read_text()


def losses(run_dir):
    """{step: loss}, the last line of each step (a resumed run repeats the steps after its checkpoint)."""
    out = {}
    for line in open(run_dir / "steps.jsonl"):
        row = json.loads(line)
        out[row["step"]] = row["loss"]
    return out


def test_a_killed_stream_resumes_to_the_losses_of_an_unbroken_run(tiny_args, synth_world, shards, tmp_path):
    source = "shards"  # the JSONL stream resumes through the same positions (its dealing is tested above)
    steps = ("loop.steps=16", "loop.ckpt_every=4", "loop.pair_batch=8", "loop.eval_every=0")
    unbroken, broken = tmp_path / "unbroken", tmp_path / "broken"
    assert main(stream_args(tiny_args, synth_world, unbroken, source, shards, *steps)) == 0
    cmd = [sys.executable, "-m", "omniembed.train", *stream_args(tiny_args, synth_world, broken, source, shards,
                                                                 *steps)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if (broken / "steps.jsonl").is_file() and max(losses(broken), default=0) >= 7:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its loader workers, mid-step
    finally:
        proc.wait()
    killed_at = max(losses(broken))
    assert 7 <= killed_at < 16
    assert main(stream_args(tiny_args, synth_world, broken, source, shards, *steps, "--resume")) == 0
    a, b = losses(unbroken), losses(broken)
    assert sorted(a) == sorted(b) == list(range(1, 17))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-6, abs=1e-7), step


def test_a_stream_of_nothing_but_rejects_stops_with_a_clear_error(tiny_args, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(f'{{"id": "r{i}", "kind": "item", "views": {{"image": "missing-{i}.png"}}}}\n'
                           for i in range(6)) + "{not json\n")
    out = tmp_path / "run"
    assert main(tiny_args(out, f"data.manifest={bad}", "data.stream=true", "data.loader_workers=1",
                          "loop.steps=5", "loop.pair_batch=4")) == 2
    log = (out / "train.log").read_text()
    assert "steps in a row had no record to learn from" in log
    assert "media file not found" in log  # each reject was logged with its reason
