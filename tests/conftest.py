"""Shared fixtures. Tests make real media bytes and real servers; nothing here is a mock."""

import functools
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from omniembed.model import OmniModel, load_model_config

# Tests run beside other work on few cores: keep torch from oversubscribing.
os.environ.setdefault("OMP_NUM_THREADS", "2")

SYNTH_WORLD_ITEMS = 48
SYNTH_WORLD_SEED = 7


@pytest.fixture(scope="session")
def synth_world(tmp_path_factory):
    """A small synthetic world generated once per session (a few seconds), read back and validated.

    Returns `omniembed.data.synth.SynthWorld`: `.root` (folder), `.manifest_path` / `.heldout_path`
    (JSONL), `.world` (world.json as a dict), `.train` / `.heldout` (lists of manifest Records: `Item` and
    `Document`), `.items` (every Item of both splits). 48 items (42 train, 6 held-out), 24 documents; each
    item has 4 captions, a 64x64 PNG, a 2 s 16 kHz WAV and a 2 s 8 fps 64x64 MP4 with the sound as its
    audio track. Treat it as read-only: other tests share it.
    """
    from omniembed.data.synth import generate, load_world

    root = tmp_path_factory.mktemp("synth_world")
    generate(root, SYNTH_WORLD_ITEMS, SYNTH_WORLD_SEED, workers=1)
    return load_world(root)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tmp_path_factory):
    """tiny_run exported through the real command (`omniembed export`, fp32 + int8 + fp16 trunks); the export
    itself checks ONNX Runtime against torch. About 30 s of CPU after tiny_run, once per session. Returns
    bench.bundles.FreshBundle: os.PathLike (pass it where a bundle folder goes) with `.path`, `.model`,
    `.tokenizers`, `.vocab` (the run's torch objects), `.max_tokens`, `.document_tokenizer()`, and `.run_dir`.
    Read-only: other tests share it."""
    import torch

    from omniembed.export import main
    from bench.bundles import exported_run

    out = tmp_path_factory.mktemp("tiny_bundle") / "bundle"
    threads = torch.get_num_threads()
    try:
        rc = main([str(tiny_run), "--out", str(out), "--int8", "--fp16", "--threads", "2"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0, "omniembed export of tiny_run failed"
    return exported_run(out, tiny_run)


@pytest.fixture(scope="session")
def tiny_run(synth_world, tmp_path_factory):
    """A training RUN_DIR built through the real entry point (`omniembed.train.cli.main`) from the tiny config on
    synth_world: tokenizers trained briefly into RUN_DIR/tokenizers, 12 joint steps, one evaluation. About a
    minute, once per session. Returns the RUN_DIR Path (train.yaml, tokenizers/, checkpoint.pt, eval.jsonl,
    steps.jsonl, corpus.*); load it with omniembed.train.rundir.load_run. Read-only: other tests share it."""

    import torch

    from omniembed.train.cli import main

    run_dir = tmp_path_factory.mktemp("tiny_run")
    threads = torch.get_num_threads()
    try:
        rc = main(["--config", "tiny", "--out", str(run_dir), f"data.manifest={synth_world.manifest_path}",
                   "tokenizer.image_steps=30", "tokenizer.audio_steps=30"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0, f"tiny training failed; see {run_dir / 'train.log'}"
    return run_dir


# ---- a toy vocabulary and corpora with structure a model can learn (trunk and trainer tests) ----------------
VOCAB, PAD, EMBED, EOS = 64, 0, 1, 2


@pytest.fixture
def one_torch_thread():
    """One torch thread and seed 0 for the test (the trunk and trainer tests use it as an autouse fixture)."""
    # 2 cores shared with other test runs: one thread avoids OpenMP spin contention; restore afterwards
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_model():
    """A tiny OmniModel over the toy vocabulary (VOCAB ids: 0 <pad>, 1 <embed>, 2 <eos>, 3 spare, 4.. content)."""

    def make(**overrides):
        cfg = load_model_config("tiny", vocab_size=VOCAB, pad_id=PAD, **{"grid_position": False, **overrides})
        return OmniModel(cfg)
    return make


def progression_corpus(n: int, length: int = 24, seed: int = 0) -> torch.Tensor:
    """Arithmetic progressions mod 24 in ids 4..27: after two tokens the rest is determined. (n, length)."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, 24, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    return 4 + (start + step * torch.arange(length)) % 24


def paired_views(n: int, seed: int = 0):
    """Items with two attributes (6 x 6); view a spells them as 'text' ids 4..15 with filler, view b as
    'image' ids 30..63 in another order and length. Both end with <embed>. Returns a, b, labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 36, (n,), generator=g)
    colour, shape = labels // 6, labels % 6
    filler = torch.randint(16, 28, (n, 2), generator=g)
    embed = torch.full_like(labels, EMBED)
    a = torch.stack([filler[:, 0], 4 + colour, filler[:, 1], 10 + shape, embed], dim=1)
    noise = torch.randint(56, 64, (n, 2), generator=g)
    b = torch.stack([30 + shape, noise[:, 0], 40 + colour, 46 + shape, noise[:, 1], embed], dim=1)
    return a, b, labels


@pytest.fixture
def corpus():
    return progression_corpus


@pytest.fixture
def pairs():
    return paired_views


# ---- torchrun launches in a loopback-only network namespace ------------------------------------------------
# Run test subprocesses (torchrun launches) in a network namespace of their own where the OS allows it
# (`unshare -rn`, an unprivileged user + network namespace): only loopback exists in there, so the servers
# such a run starts, some of which bind every interface (the TCPStore behind torchrun's rendezvous does), can
# be reached on 127.0.0.1 only. Where namespaces are not allowed the commands run as they are.



# started inside the namespace: runs every command at once (the "nodes" of one job) and reports their codes
DRIVER = r"""
import json, subprocess, sys
spec = json.loads(sys.argv[1])
procs = [subprocess.Popen(c, stdout=open(o, "w"), stderr=subprocess.STDOUT, env=spec["env"])
         for c, o in zip(spec["cmds"], spec["outs"])]
print(json.dumps([p.wait() for p in procs]))
"""


@functools.lru_cache(maxsize=1)
def loopback_namespace_available() -> bool:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True)
    return probe.returncode == 0


def run_in_loopback_namespace(cmds: list[list[str]], env: dict, workdir, timeout: float = 600) -> list[tuple[int, str]]:
    """(exit code, output) of each command, all started together; gloo is told to use loopback."""
    workdir.mkdir(parents=True, exist_ok=True)
    outs = [str(workdir / f"command-{i}.log") for i in range(len(cmds))]
    spec = json.dumps({"cmds": cmds, "outs": outs, "env": {**env, "GLOO_SOCKET_IFNAME": "lo"}})
    prefix = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'] if loopback_namespace_available() else []
    proc = subprocess.run([*prefix, sys.executable, "-c", DRIVER, spec], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    return [(code, open(out).read()) for code, out in zip(codes, outs)]


@pytest.fixture(scope="session")
def in_loopback_namespace():
    """run_in_loopback_namespace(cmds, env, workdir, timeout=600) -> [(exit code, output)]: the commands
    started together (e.g. two torchrun "nodes"), in their own loopback-only network namespace if allowed."""
    return run_in_loopback_namespace
