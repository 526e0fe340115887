"""The serving path never imports torch: a fresh interpreter in which importing torch is impossible loads the
bundle and embeds every modality, and torch is still not in sys.modules at the end."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r'''
import importlib.abc, json, pathlib, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked: omniembed.runtime must not import it")
        return None

sys.meta_path.insert(0, NoTorch())
from omniembed.runtime import Embedder

bundle, image, audio, video = sys.argv[1:5]
out = {}
for variant in ("fp32", "int8"):
    emb = Embedder.load(bundle, threads=1, variant=variant)
    inputs = ["a small red circle", pathlib.Path(image), pathlib.Path(audio).read_bytes(), pathlib.Path(video),
              ["look", pathlib.Path(image), "and listen", pathlib.Path(audio)]]
    vecs = emb.embed(inputs, dim=min(emb.dims))
    out[variant] = {"shape": list(vecs.shape), "norms": [float(n) for n in (vecs ** 2).sum(1)]}
out["torch_loaded"] = "torch" in sys.modules
print(json.dumps(out))
'''


def test_runtime_embeds_every_modality_in_an_interpreter_without_torch(tiny_bundle, synth_world):
    item = next(it for it in synth_world.items if {"image", "audio", "video"} <= set(it.media))
    paths = [item.media[v].source for v in ("image", "audio", "video")]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(Path(tiny_bundle)), *paths], capture_output=True,
                          text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch_loaded"] is False
    for variant in ("fp32", "int8"):
        assert result[variant]["shape"] == [5, min(tiny_bundle.model.cfg.embed_dims)]
        assert all(abs(n - 1.0) < 1e-4 for n in result[variant]["norms"])
