"""Media of any length: a three-minute clip of synthetic-world sounds in sequence, with quiet noise between
them, embedded window by window and indexed with its windows through a real server; searching with one item's
caption finds the clip at a time span that covers that item's sound."""

import numpy as np
import pytest

from bench.worlds import subset
from omniembed.data.manifest import load_manifest
from omniembed.media import SAMPLE_RATE, decode_audio, encode_audio

pytestmark = pytest.mark.slow
N_SOUNDS = 30  # 2 s each
GAP = 4.0  # seconds of quiet noise before each sound
SOUND = 2.0
CLIP = N_SOUNDS * (GAP + SOUND)  # 180 s; 2 s windows at a 1 s stride: CLIP - 1 of them


@pytest.fixture(scope="module")
def trained(synth_world, tmp_path_factory):
    """A tiny text+audio model trained long enough to tell the world's training sounds apart, exported."""
    import torch

    from omniembed.export import export_run
    from omniembed.train.cli import main

    root = tmp_path_factory.mktemp("long_media")
    manifest, _ = subset(synth_world.root, root / "data", ["text", "audio"])
    threads = torch.get_num_threads()
    try:
        assert main(["--config", "tiny", "--out", str(root / "run"), f"data.manifest={manifest}", "loop.steps=700",
                     "loop.multiview=0", "loop.log_every=0"]) == 0
        export_run(root / "run", root / "bundle", verify=False)
    finally:
        torch.set_num_threads(threads)
    items = [r for r in load_manifest(manifest) if r.kind == "item"][:N_SOUNDS]
    rng = np.random.default_rng(0)
    parts = []
    for item in items:
        parts.append(rng.normal(0, 0.003, int(GAP * SAMPLE_RATE)).astype(np.float32))
        parts.append(decode_audio(item.media["audio"].source))
        assert parts[-1].size == SOUND * SAMPLE_RATE
    clip = root / "long.wav"
    clip.write_bytes(encode_audio(np.concatenate(parts), SAMPLE_RATE))
    return root, items, clip


def _start(n: int) -> float:
    return GAP + n * (GAP + SOUND)


def _covers(span, n: int) -> bool:
    """Whether a window overlaps the n-th sound."""
    return span[0] < _start(n) + SOUND and span[1] > _start(n)


def test_a_long_clip_is_embedded_window_by_window_and_pooled(trained):
    from omniembed.runtime import Embedder
    from omniembed.tokenization.windows import pool

    root, items, clip = trained
    emb = Embedder.load(root / "bundle")
    assert emb.windowing.audio.seconds == 2.0 and emb.windowing.audio.stride == 1.0  # the training clips' length
    (windows, spans), = emb.embed_windows([clip])
    assert len(spans) == CLIP - 1 and spans[0] == (0.0, 2.0) and spans[-1] == (CLIP - 2, CLIP)
    np.testing.assert_allclose(emb.embed([clip])[0], pool(windows), atol=1e-6)
    short = emb.embed_windows([items[0].media["audio"].source])[0]
    assert short[1] is None and short[0].shape == (1, emb.dim)  # a clip of the training length is one window


def test_searching_a_caption_finds_the_moment_in_the_long_clip_through_the_server(trained, tmp_path):
    from omniembed.serve import Client
    from omniembed.serve.process import ServerProcess

    root, items, clip = trained
    with ServerProcess(["--bundle", str(root / "bundle"), "--index", str(tmp_path / "ix")]) as server, \
            Client(server.target, timeout=120) as c:
        c.upsert(["long"], items=[{"audio": clip}], segments=True)
        c.upsert([f"text-{i}" for i in range(3)], items=[it.texts[1] for it in items[:3]])  # other rows
        stats = c.stats()
        assert stats["count"] == 4 and stats["index"]["windows"] == CLIP - 1
        covered = 0
        for n, item in enumerate(items):
            hits = c.search(item.texts[0], k=1, filter={"modality": "audio"})
            assert [h.id for h in hits] == ["long"] and hits[0].span is not None
            covered += _covers(hits[0].span, n)
    # chance: 3 of the 179 windows overlap a given sound
    assert covered >= 0.6 * N_SOUNDS, covered
