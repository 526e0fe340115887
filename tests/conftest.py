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
