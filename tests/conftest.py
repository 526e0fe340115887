"""Shared fixtures. Tests make real media bytes and real servers; nothing here is a mock."""

import os

import pytest

# Tests run on a 2-core machine beside other work: keep torch from oversubscribing.
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
    """tiny_run exported through the real command (`omniembed.export.main`, fp32 + int8 + fp16 trunks); the export
    itself checks ONNX Runtime against torch. About 30 s of CPU after tiny_run, once per session. Returns
    omniembed.export_fresh.FreshBundle: os.PathLike (pass it where a bundle folder goes) with `.path`, `.model`,
    `.tokenizers`, `.vocab` (the run's torch objects), `.max_tokens`, `.document_tokenizer()`, and `.run_dir`.
    Read-only: other tests share it."""
    import torch

    from omniembed.export import main
    from omniembed.export_fresh import exported_run

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
    """A training RUN_DIR built through the real entry point (`omniembed.train.main`) from configs/tiny.yaml on
    synth_world: tokenizers trained briefly into RUN_DIR/tokenizers, 12 joint steps, one evaluation. About a
    minute, once per session. Returns the RUN_DIR Path (train.yaml, tokenizers/, checkpoint.pt, eval.jsonl,
    steps.jsonl, corpus.*); load it with omniembed.run.load_run. Read-only: other tests share it."""
    from pathlib import Path

    import torch

    from omniembed.train import main

    run_dir = tmp_path_factory.mktemp("tiny_run")
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    threads = torch.get_num_threads()
    try:
        rc = main(["--config", str(config), "--out", str(run_dir), f"data.manifest={synth_world.manifest_path}",
                   "tokenizer.overrides.image_steps=30", "tokenizer.overrides.audio_steps=30"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0, f"tiny training failed; see {run_dir / 'train.log'}"
    return run_dir
