"""The main command on users' own data shapes (the tiny config on subsets of a synthetic world): any mix of
modalities trains, exports, serves and queries end to end, the queries are those the held-out set can form,
and the bundle refuses a modality its tokenizers never learned."""

import json
import subprocess
import sys
import pytest

from bench.worlds import subset

pytestmark = pytest.mark.slow

SHAPES = {
    "text+image": ({"text", "image"}, None, ["text->image", "image->text"]),
    "text+audio": ({"text", "audio"}, None, ["text->audio", "audio->text"]),
    "image+audio+text": ({"text", "image", "audio"}, None,
                         ["text->image", "text->audio", "image->text", "image->audio", "audio->text", "audio->image"]),
    "video+text": ({"text", "video"}, None, ["text->video", "video->text"]),
    "mixed": (None, {"0": {"text", "image"}, "1": {"text", "image", "audio"}},
              ["text->image", "text->audio", "image->text", "image->audio", "audio->text", "audio->image"]),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_main_command_runs_end_to_end_on_a_manifest_of(shape, synth_world, tmp_path):
    views, every, pairs = SHAPES[shape]
    manifest, _ = subset(synth_world.root, tmp_path / "data", views or [], every=every)
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "omniembed.cli", "demo", "--config", "tiny", "--out", str(out),
                          "--manifest", str(manifest), "--show", "1"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    queries = json.loads((out / "queries.json").read_text())
    assert list(queries) == pairs and all(0.0 <= r <= 1.0 for r in queries.values())
    assert "skipped " in run.stdout  # every shape lacks a modality of the headline pairs: they are listed
    trained = json.loads((out / "bundle" / "manifest.json").read_text())["modalities"]
    absent = [m for m in ("image", "audio") if m not in trained]
    if absent:  # e.g. a text+audio model: an image query is refused by name, not embedded as noise
        from omniembed.runtime import Embedder
        from omniembed.tokenization.document import DocumentError

        media = next(synth_world.root.glob("media/*." + {"image": "png", "audio": "wav"}[absent[0]]))
        with pytest.raises(DocumentError, match=f"trained without {absent[0]}"):
            Embedder.load(out / "bundle").embed([{absent[0]: media.read_bytes()}])
